"""Chooses BPFA inpainting's defaults: PSNR and seconds per crop for a few settings.

Runs ``wgimask.diffusion.bpfa.inpaint_bpfa`` for a small grid of settings
(patch size, dictionary size, iterations, averaged samples, start) on 64 x 64
colour crops of ``skimage.data`` photos (training images only: none of them
is used for reporting) with uniformly random masks at 5, 10 and 20 %
density, and prints the mean PSNR per density and the mean seconds per crop,
with homogeneous diffusion inpainting from the same masks as a reference
row. One core (the thread variables are set to 1 below).

Usage:
    python -m benchmarks.studies.bpfa_parameters [--crops_per_image 2]
        [--densities 0.05,0.1,0.2] [--quick]
"""

from __future__ import annotations

import argparse
import os

for _var in (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
):
    os.environ[_var] = "1"

import time  # noqa: E402

import numpy as np  # noqa: E402
from skimage import data  # noqa: E402

from wgimask.baselines import inpaint, random_mask  # noqa: E402
from wgimask.diffusion.bpfa import inpaint_bpfa  # noqa: E402
from wgimask.evaluation.metrics import psnr  # noqa: E402

#: Training photos (colour, bundled with scikit-image).
IMAGES = ("astronaut", "chelsea", "coffee", "rocket")

#: The grid: (label, keyword arguments of inpaint_bpfa).
SETTINGS = (
    ("p8 K64 it60 s20 (default)", {}),
    ("p8 K64 it30 s10", {"iterations": 30, "samples": 10}),
    ("p8 K128 it60 s20", {"atoms": 128}),
    ("p8 K64 it150 s50", {"iterations": 150, "samples": 50}),
    ("p6 K64 it60 s20", {"patch_size": 6}),
    ("p10 K64 it60 s20", {"patch_size": 10}),
    ("p8 K64 it60 s20, random start", {"init": "random"}),
    (
        "p8 K128 it150 s50, random start",
        {"atoms": 128, "iterations": 150, "samples": 50, "init": "random"},
    ),
)


def cpu_name() -> str:
    """The CPU model name from /proc/cpuinfo (what lscpu shows)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def crops(size: int, per_image: int) -> list[np.ndarray]:
    """Fixed-position random crops of the training photos, values in [0, 1]."""
    rng = np.random.default_rng(0)
    out = []
    for name in IMAGES:
        im = getattr(data, name)()[:, :, :3] / 255.0
        for _ in range(per_image):
            y = int(rng.integers(0, im.shape[0] - size + 1))
            x = int(rng.integers(0, im.shape[1] - size + 1))
            out.append(im[y : y + size, x : x + size])
    return out


def run_row(label, images, densities, method) -> None:
    """Prints one row: mean PSNR per density, overall mean, s per crop."""
    scores = []
    seconds = []
    for d in densities:
        values = []
        for i, f in enumerate(images):
            mask = random_mask(f.shape, d, seed=i)
            t = time.perf_counter()
            u = method(f, mask, i)
            seconds.append(time.perf_counter() - t)
            values.append(psnr(f, np.clip(u, 0.0, 1.0)))
        scores.append(float(np.mean(values)))
    cells = " | ".join(f"{s:.2f}" for s in scores)
    print(
        f"| {label} | {cells} | {np.mean(scores):.2f} | {np.mean(seconds):.2f} |",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--crops_per_image", type=int, default=2)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--densities", default="0.05,0.1,0.2")
    parser.add_argument("--quick", action="store_true", help="only the default setting")
    args = parser.parse_args()
    densities = [float(v) for v in args.densities.split(",") if v.strip()]
    images = crops(args.image_size, args.crops_per_image)
    # Compile (or load) the kernels before timing anything.
    inpaint_bpfa(
        images[0][:12, :12], random_mask((12, 12), 0.5), iterations=2, samples=1
    )
    print(
        f"\n{len(images)} colour crops of {args.image_size} px from skimage.data "
        f"({', '.join(IMAGES)}), random masks, mean PSNR (dB); "
        f"CPU: {cpu_name()}, one core\n"
    )
    head = " | ".join(f"{d:.0%}" for d in densities)
    print(f"| setting | {head} | mean | s/crop |")
    print("|---" * (len(densities) + 3) + "|")
    run_row("homogeneous diffusion", images, densities, lambda f, m, i: inpaint(f, m))
    settings = SETTINGS[:1] if args.quick else SETTINGS
    for label, kwargs in settings:
        run_row(
            label,
            images,
            densities,
            lambda f, m, i, kw=kwargs: inpaint_bpfa(f, m, seed=i, **kw),
        )


if __name__ == "__main__":
    main()
