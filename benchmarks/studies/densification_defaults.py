"""Chooses the densification mask's defaults: PSNR of homogeneous diffusion per setting.

Varies one setting of `wgimask.baselines.densification_mask` at a time
around the defaults (start fraction, growth per step, suppression radius in
mean point spacings) and prints the mean PSNR of the homogeneous diffusion
inpainting and the mean seconds per mask, next to the analytic mask and PS
(the paper's p = q = 0.2 defaults of this project). The images are centre
crops of a folder (the training photos of recipes/prepare_pretraining_data.py
by default, so that the validation photos stay for reporting), loaded as
evaluate.py does; colour only.

Usage:
    python -m benchmarks.studies.densification_defaults
        [--data_dir data/pretraining/train] [--image_size 64]
        [--densities 0.05,0.1,0.2] [--max_images 76]
"""

from __future__ import annotations

import argparse
import os
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import numpy as np  # noqa: E402

from wgimask.baselines import (  # noqa: E402
    analytic_mask,
    densification_mask,
    inpaint,
    probabilistic_sparsification,
)
from wgimask.devices import cpu_description  # noqa: E402
from wgimask.evaluation.metrics import psnr  # noqa: E402
from wgimask.evaluation.reports import load_evaluation_images  # noqa: E402
from wgimask.masks import densification as dens  # noqa: E402
from wgimask.masks.densification import densification_radius  # noqa: E402


def row(images, densities, label, make) -> None:
    """Prints one table row: mean PSNR and seconds per mask for each density."""
    cells = []
    for d in densities:
        scores, seconds = [], 0.0
        for i, f in enumerate(images):
            start = time.process_time()
            mask = make(f, d, i)
            seconds += time.process_time() - start
            scores.append(psnr(f, np.clip(inpaint(f, mask), 0, 1)))
        cells.append(f"{np.mean(scores):.2f} ({seconds / len(images):.3f} s)")
    print(f"| {label} | {' | '.join(cells)} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", default="data/pretraining/train")
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--densities", default="0.05,0.1,0.2")
    parser.add_argument("--max_images", type=int, default=None)
    args = parser.parse_args()
    densities = [float(v) for v in args.densities.split(",")]
    loaded = load_evaluation_images(args.data_dir, args.image_size, 3, args.max_images)
    images = [im.astype(np.float64) for _, _, im, upscaled in loaded if not upscaled]
    print(
        f"{len(images)} colour images, {args.image_size}px, mean PSNR (dB) of "
        f"homogeneous diffusion and CPU seconds per mask; CPU: {cpu_description()}\n"
    )
    head = " | ".join(f"{d:.0%}" for d in densities)
    print(f"| mask | {head} |")
    print("|---" * (len(densities) + 1) + "|")
    row(images, densities, "analytic", lambda f, d, i: analytic_mask(f, d, seed=i))
    row(
        images,
        densities,
        "PS",
        lambda f, d, i: probabilistic_sparsification(f, d, seed=i),
    )
    defaults = {
        "start": dens.DEFAULT_START,
        "growth": dens.DEFAULT_GROWTH,
        "spacings": dens.RADIUS_SPACINGS,
    }
    settings = [dict(defaults)]
    for key, values in (
        ("start", (0.03, 0.25, 0.5)),
        ("growth", (0.1, 0.25)),
        ("spacings", (0.0, 0.4, 0.8)),
    ):
        settings += [{**defaults, key: value} for value in values]
    for setting in settings:
        label = (
            f"densify start={setting['start']:g}, growth={setting['growth']:g}, "
            f"radius={setting['spacings']:g} spacings"
            + (" (defaults)" if setting == defaults else "")
        )
        row(
            images,
            densities,
            label,
            lambda f, d, i, s=setting: densification_mask(
                f,
                d,
                seed=i,
                start=s["start"],
                growth=s["growth"],
                radius=densification_radius(d, s["spacings"]),
            ),
        )


if __name__ == "__main__":
    main()
