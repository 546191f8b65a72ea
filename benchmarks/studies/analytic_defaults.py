"""Chooses the analytic mask's defaults: PSNR of homogeneous diffusion per setting.

For every halftoning, and for every sigma (Gaussian before the Laplacian) and
exponent, it builds the analytic mask of each image at each density and
prints the mean PSNR of the homogeneous diffusion inpainting, for colour and
grey images, next to random masks. The images are centre crops of a folder
(the training photos of recipes/prepare_pretraining_data.py by default, so
that the validation photos stay for reporting), loaded as evaluate.py does.

Usage:
    python -m benchmarks.studies.analytic_defaults [--data_dir data/pretraining/train]
        [--image_size 64] [--sigmas 0.7,1,2] [--exponents 0.75,1]
        [--halftonings ordered,error_diffusion]
"""

from __future__ import annotations

import argparse
import itertools
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import numpy as np  # noqa: E402

from wgimask.baselines import analytic_mask, inpaint, random_mask  # noqa: E402
from wgimask.evaluation.metrics import psnr  # noqa: E402
from wgimask.evaluation.reports import load_evaluation_images  # noqa: E402


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def row(images, densities, label, make) -> None:
    """Prints one table row: mean PSNR per density for a mask function."""
    scores = [
        np.mean(
            [
                psnr(f, np.clip(inpaint(f, make(f, d, i)), 0, 1))
                for i, f in enumerate(images)
            ]
        )
        for d in densities
    ]
    cells = " | ".join(f"{s:.2f}" for s in scores)
    print(f"| {label} | {cells} | {np.mean(scores):.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", default="data/pretraining/train")
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--densities", default="0.05,0.1,0.2")
    parser.add_argument("--sigmas", default="0.7,1,2")
    parser.add_argument("--exponents", default="0.75,1")
    parser.add_argument("--halftonings", default="ordered,error_diffusion")
    args = parser.parse_args()
    densities = floats(args.densities)
    head = " | ".join(f"{d:.0%}" for d in densities)
    for channels in (3, 1):
        loaded = load_evaluation_images(args.data_dir, args.image_size, channels, None)
        # Images smaller than the crop (upscaled) are left out, as in
        # evaluate.py's main averages.
        images = [
            im.astype(np.float64)[:, :, :channels]
            for _, _, im, upscaled in loaded
            if not upscaled
        ]
        if channels == 1:
            images = [im[:, :, 0] for im in images]
        print(
            f"\n{len(images)} {'colour' if channels == 3 else 'grey'} images, "
            f"{args.image_size}px, mean PSNR (dB) of homogeneous diffusion\n"
        )
        print(f"| mask | {head} | mean |")
        print("|---" * (len(densities) + 2) + "|")

        row(
            images, densities, "random", lambda f, d, i: random_mask(f.shape, d, seed=i)
        )
        row(
            images,
            densities,
            "analytic, defaults",
            lambda f, d, i: analytic_mask(f, d, seed=i),
        )
        halftonings = [h for h in args.halftonings.split(",") if h]
        for h, s, e in itertools.product(
            halftonings,
            ["auto", *map(float, floats(args.sigmas))],
            floats(args.exponents),
        ):
            row(
                images,
                densities,
                f"analytic, {h}, sigma {s}, exponent {e:g}",
                lambda f, d, i, h=h, s=s, e=e: analytic_mask(
                    f, d, seed=i, sigma=s, exponent=e, halftoning=h
                ),
            )


if __name__ == "__main__":
    main()
