"""Chooses EED's contrast and sigma; EED and biharmonic against homogeneous diffusion.

Grid search for ``wgimask.diffusion.eed.inpaint_eed`` on training crops
only: 64x64 crops at four positions of each of eight colour photos of
``skimage.data`` (astronaut, chelsea, coffee, rocket, immunohistochemistry,
hubble_deep_field, retina, stereo_motorcycle), random masks
(``wgimask.baselines.random_mask``) of 5, 10 and 20 %. For every
diffusivity, contrast and sigma it prints the mean PSNR per density (of the
result clipped to [0, 1]), the gain over homogeneous diffusion from the same
masks at 5 % and the mean seconds per crop at 5 %; homogeneous diffusion and
biharmonic inpainting (``wgimask.diffusion.biharmonic``) are rows of their
own. The setting with the best PSNR averaged over the densities is then run
on validation crops (two other positions of every photo, other mask seeds)
beside homogeneous diffusion and biharmonic inpainting.

Usage:
    python -m benchmarks.studies.eed_bih_parameters [--size 64]
        [--densities 0.05,0.1,0.2] [--contrasts 0.002,0.005,0.01,0.02,0.05]
        [--sigmas 0.5,1,1.5,2,2.5] [--diffusivities charbonnier,perona_malik]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import numpy as np  # noqa: E402
from skimage import data  # noqa: E402

from wgimask.baselines import inpaint, random_mask  # noqa: E402
from wgimask.diffusion.biharmonic import inpaint_biharmonic  # noqa: E402
from wgimask.diffusion.eed import inpaint_eed  # noqa: E402
from wgimask.evaluation.metrics import psnr  # noqa: E402

PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "stereo_motorcycle",
)
# Crop positions as fractions of (H - size, W - size).
TRAIN_POSITIONS = ((0.2, 0.2), (0.2, 0.6), (0.6, 0.2), (0.6, 0.6))
VALIDATION_POSITIONS = ((0.4, 0.4), (0.75, 0.75))
# Mask seeds: crop i of the training set uses seed i, of the validation set
# VALIDATION_SEED + i.
VALIDATION_SEED = 1000


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def crops(size: int, positions) -> list[np.ndarray]:
    """size x size crops in [0, 1] of every photo at the given positions."""
    out = []
    for name in PHOTOS:
        image = getattr(data, name)()
        if isinstance(image, tuple):  # stereo_motorcycle: (left, right, disparity)
            image = image[0]
        image = image.astype(np.float64) / 255.0
        h, w = image.shape[:2]
        for fy, fx in positions:
            top, left = int(fy * (h - size)), int(fx * (w - size))
            out.append(image[top : top + size, left : left + size, :3])
    return out


def scores(method, images, densities, seed0: int) -> tuple[list[float], float]:
    """Mean PSNR per density, and mean seconds per image at the first density."""
    means, seconds = [], 0.0
    for k, density in enumerate(densities):
        values, spent = [], 0.0
        for i, f in enumerate(images):
            mask = random_mask(f.shape, density, seed=seed0 + i)
            start = time.perf_counter()
            u = method(f, mask)
            spent += time.perf_counter() - start
            values.append(psnr(f, np.clip(u, 0.0, 1.0)))
        means.append(float(np.mean(values)))
        if k == 0:
            seconds = spent / len(images)
    return means, seconds


def cpu_name() -> str:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return "unknown CPU"
    for line in text.splitlines():
        if line.startswith("Model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def table_row(label: str, means: list[float], base: float, seconds: float) -> str:
    cells = " | ".join(f"{s:.2f}" for s in means)
    return (
        f"| {label} | {cells} | {np.mean(means):.2f} | {means[0] - base:+.2f} "
        f"| {seconds:.3f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--densities", default="0.05,0.1,0.2")
    parser.add_argument("--contrasts", default="0.002,0.005,0.01,0.02,0.05")
    parser.add_argument("--sigmas", default="0.5,1,1.5,2,2.5")
    parser.add_argument("--diffusivities", default="charbonnier,perona_malik")
    args = parser.parse_args()
    densities = floats(args.densities)
    train = crops(args.size, TRAIN_POSITIONS)
    head = " | ".join(f"{d:.0%}" for d in densities)
    print(
        f"{len(train)} training crops of {args.size}x{args.size} px (colour), "
        f"random masks; mean PSNR (dB) of the result clipped to [0, 1]; "
        f"gain: EED minus homogeneous diffusion at {densities[0]:.0%}; "
        f"s/crop at {densities[0]:.0%}; {cpu_name()}, one thread\n"
    )
    print(f"| method | {head} | mean | gain | s/crop |")
    print("|---" * (len(densities) + 4) + "|")
    hd, hd_s = scores(inpaint, train, densities, 0)
    print(table_row("homogeneous diffusion", hd, hd[0], hd_s), flush=True)
    bih, bih_s = scores(inpaint_biharmonic, train, densities, 0)
    print(table_row("biharmonic", bih, hd[0], bih_s), flush=True)
    best = None
    for diffusivity in args.diffusivities.split(","):
        for contrast in floats(args.contrasts):
            for sigma in floats(args.sigmas):

                def eed(f, m, c=contrast, s=sigma, d=diffusivity):
                    return inpaint_eed(f, m, contrast=c, sigma=s, diffusivity=d)

                means, seconds = scores(eed, train, densities, 0)
                label = f"EED {diffusivity} lambda={contrast:g} sigma={sigma:g}"
                print(table_row(label, means, hd[0], seconds), flush=True)
                if best is None or np.mean(means) > best[0]:
                    best = (float(np.mean(means)), diffusivity, contrast, sigma)
    _, diffusivity, contrast, sigma = best
    print(
        f"\nbest on training crops: diffusivity={diffusivity} contrast={contrast:g} "
        f"sigma={sigma:g}"
    )
    valid = crops(args.size, VALIDATION_POSITIONS)
    print(f"\n{len(valid)} validation crops (other positions and mask seeds)\n")
    print(f"| method | {head} | mean | gain | s/crop |")
    print("|---" * (len(densities) + 4) + "|")
    hd, hd_s = scores(inpaint, valid, densities, VALIDATION_SEED)
    print(table_row("homogeneous diffusion", hd, hd[0], hd_s))
    bih, bih_s = scores(inpaint_biharmonic, valid, densities, VALIDATION_SEED)
    print(table_row("biharmonic", bih, hd[0], bih_s))

    def chosen(f, m):
        return inpaint_eed(
            f, m, contrast=contrast, sigma=sigma, diffusivity=diffusivity
        )

    means, seconds = scores(chosen, valid, densities, VALIDATION_SEED)
    label = f"EED {diffusivity} lambda={contrast:g} sigma={sigma:g}"
    print(table_row(label, means, hd[0], seconds))


if __name__ == "__main__":
    main()
