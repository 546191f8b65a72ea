"""Can the fitted densities be predicted from the image? A linear probe.

    python -m benchmarks.studies.density_headroom --crops=data/pretraining/train \
        --densities=0.1 --steps=500 --save=train.npz
    python -m benchmarks.studies.density_headroom --crops=data/pretraining/validation \
        --densities=0.1 --steps=500 --save=val.npz
    python -m benchmarks.studies.density_predictability --train=train.npz --val=val.npz

`density_headroom.py` fits a free log-density per crop. The target here is
its correction of the analytic log-density (fitted minus analytic, centred
per crop: only relative densities matter after halftoning). A ridge
regression on per-pixel features of the crop (log Laplacian-of-Gaussian
magnitudes at several scales, log gradient magnitude, log local standard
deviation and the analytic log-density itself, each centred per crop) is
fitted on the training crops and applied to the validation crops. Printed:
the variance of the target it explains on both, and the PSNR of diffusion
from the analytic, predicted and fitted densities, halftoned as
`wgimask.inference` halftones. A linear probe is a floor for what a network
could predict, not a ceiling.
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import ndimage

SCALES = (0.5, 1.0, 2.0, 4.0)


def features(crop: np.ndarray, analytic: np.ndarray) -> np.ndarray:
    """(H*W, F) per-pixel features of one crop, centred per crop."""
    grey = crop.mean(axis=-1).astype(np.float64)
    columns = []
    for sigma in SCALES:
        log = np.abs(ndimage.gaussian_laplace(grey, sigma, mode="reflect"))
        columns.append(np.log(log + 1e-4))
        smooth = ndimage.gaussian_filter(grey, sigma, mode="reflect")
        gy, gx = np.gradient(smooth)
        columns.append(np.log(np.hypot(gx, gy) + 1e-4))
        mean = ndimage.gaussian_filter(grey, 2 * sigma, mode="reflect")
        square = ndimage.gaussian_filter(grey**2, 2 * sigma, mode="reflect")
        columns.append(0.5 * np.log(np.maximum(square - mean**2, 0.0) + 1e-6))
    columns.append(analytic.astype(np.float64))
    x = np.stack([c.ravel() for c in columns], axis=1)
    return x - x.mean(axis=0)


def dataset(path: str, density: float):
    data = np.load(path)
    crops = data["crops"]
    analytic, fitted = data[f"analytic_{density:g}"], data[f"fitted_{density:g}"]
    xs, ys = [], []
    for crop, a, t in zip(crops, analytic, fitted, strict=True):
        xs.append(features(crop, a))
        target = (t - a).ravel().astype(np.float64)
        ys.append(target - target.mean())
    return crops, analytic, fitted, xs, ys


def explained(ys, predictions) -> float:
    y, p = np.concatenate(ys), np.concatenate(predictions)
    return 1.0 - float(np.mean((y - p) ** 2) / np.mean(y**2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True)
    parser.add_argument("--val", required=True)
    parser.add_argument("--density", type=float, default=0.1)
    parser.add_argument("--ridge", type=float, default=1.0)
    args = parser.parse_args()

    from wgimask.baselines import inpaint
    from wgimask.evaluation.metrics import psnr
    from wgimask.masks.analytic import halftone_density

    _, _, _, xs, ys = dataset(args.train, args.density)
    x, y = np.concatenate(xs), np.concatenate(ys)
    scale = x.std(axis=0) + 1e-12
    xn = x / scale
    weights = np.linalg.solve(xn.T @ xn + args.ridge * np.eye(xn.shape[1]), xn.T @ y)
    train_fit = explained(ys, [(xi / scale) @ weights for xi in xs])

    crops, analytic, fitted, vxs, vys = dataset(args.val, args.density)
    predicted = [(xi / scale) @ weights for xi in vxs]
    val_fit = explained(vys, predicted)

    def mean_psnr(log_densities) -> float:
        values = []
        for crop, theta in zip(crops, log_densities, strict=True):
            mask = halftone_density(np.exp(theta - theta.max()), args.density)
            values.append(psnr(crop, np.clip(inpaint(crop, mask), 0.0, 1.0)))
        return float(np.mean(values))

    shape = analytic.shape[1:]
    probe = [a + p.reshape(shape) for a, p in zip(analytic, predicted, strict=True)]
    print(
        f"D={args.density:g}: target variance explained, train {train_fit:.3f}, "
        f"validation {val_fit:.3f} ({len(xs)} train, {len(vxs)} validation crops)"
    )
    print(
        f"validation PSNR: analytic {mean_psnr(analytic):.2f} dB, "
        f"linear probe {mean_psnr(probe):.2f} dB, fitted {mean_psnr(fitted):.2f} dB"
    )


if __name__ == "__main__":
    main()
