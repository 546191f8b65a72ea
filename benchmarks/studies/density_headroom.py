"""How good can a halftoned density map get? Per-image gradient descent.

    python -m benchmarks.studies.density_headroom --crops=data/pretraining/validation

The shipped mask generators learn a correction of the analytic density that
is then halftoned. This measures the headroom of that family on the 64 px
centre crops of a folder (as ``evaluate.py --image_size=64``): for each crop
a free log-density theta (one value per pixel, no network) starts at the
analytic density and is fitted by Adam to the MAE of the exact diffusion
inpainting (`wgimask.nn.exact_diffusion`) of its ordered-dither mask (random
phase each step, straight-through gradient), as in the sanity check of
docs/learned-masks.md, for all crops at once. Printed per density: the mean
PSNR of homogeneous diffusion from the analytic mask and from the fitted
density, both halftoned as `wgimask.inference` halftones
(`halftone_density`, seed 0).

This fits each image's own density, like PS fits each image's mask; a mask
network has to predict such a density from the image alone. The gap between
the two lines is what a perfect density predictor could add to the analytic
mask; the shipped models add -0.2 to +0.03 dB (docs/model-card.md).
"""

from __future__ import annotations

import argparse
import glob
import pathlib
import time

import numpy as np


def centre_crops(folder: str, size: int) -> np.ndarray:
    """The colour centre crops of a folder's PNGs, as ``evaluate.py`` cuts them."""
    from wgimask.train import data

    paths = sorted(glob.glob(str(pathlib.Path(folder) / "*.png")))
    return np.stack([data.center_crop(data.load_image(p, 3), size) for p in paths])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", required=True, help="folder of PNG photos")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--densities", default="0.05,0.1,0.2")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--learning_rate", type=float, default=0.05)
    parser.add_argument(
        "--save",
        default=None,
        help="write crops, analytic and fitted log-densities to this .npz "
        "(one set of arrays per density, e.g. fitted_0.1)",
    )
    args = parser.parse_args()

    from wgimask import _entry

    _entry.import_tensorflow_quietly()
    import keras
    import tensorflow as tf

    from wgimask.baselines import inpaint
    from wgimask.evaluation.metrics import psnr
    from wgimask.evaluation.reports import cpu_description
    from wgimask.masks.analytic import (
        DEFAULT_EXPONENT,
        auto_sigma,
        halftone_density,
    )
    from wgimask.nn.analytic_prior import analytic_importance
    from wgimask.nn.dither import dither_mask
    from wgimask.nn.exact_diffusion import diffusion_inpaint

    crops = centre_crops(args.crops, args.size)
    print(f"CPU: {cpu_description()}; {len(crops)} crops of {args.size} px")
    f = tf.constant(crops)
    rng = np.random.default_rng(0)
    saved = {"crops": crops}

    def halftoned_psnr(log_density: np.ndarray, density: float) -> float:
        values = []
        for image, theta in zip(crops, log_density, strict=True):
            mask = halftone_density(np.exp(theta[..., 0].astype(np.float64)), density)
            values.append(psnr(image, np.clip(inpaint(image, mask), 0.0, 1.0)))
        return float(np.mean(values))

    for density in (float(d) for d in args.densities.split(",")):
        start = time.perf_counter()
        rho = analytic_importance(f, auto_sigma(density), DEFAULT_EXPONENT)
        theta = tf.Variable(tf.math.log(rho + 1e-6))
        saved[f"analytic_{density:g}"] = theta.numpy()[..., 0]
        before = halftoned_psnr(theta.numpy(), density)
        optimizer = keras.optimizers.Adam(args.learning_rate)

        @tf.function
        def step(offsets, theta=theta, optimizer=optimizer, density=density):
            with tf.GradientTape() as tape:
                mask = dither_mask(tf.exp(theta), density, offsets)
                loss = tf.reduce_mean(tf.abs(diffusion_inpaint(f, mask) - f))
            optimizer.apply([tape.gradient(loss, theta)], [theta])
            return loss

        for _ in range(args.steps):
            offsets = rng.integers(0, args.size, (len(crops), 2))
            step(tf.constant(offsets, tf.int32))
        after = halftoned_psnr(theta.numpy(), density)
        saved[f"fitted_{density:g}"] = theta.numpy()[..., 0]
        print(
            f"D={density:g}: analytic mask {before:.2f} dB, fitted density "
            f"{after:.2f} dB ({after - before:+.2f}); {args.steps} steps, "
            f"{time.perf_counter() - start:.0f} s"
        )
    if args.save:
        np.savez_compressed(args.save, **saved)


if __name__ == "__main__":
    main()
