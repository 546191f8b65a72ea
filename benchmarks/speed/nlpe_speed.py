"""Time per NLPE step with the compiled column solve and with SuperLU's.

NLPE (`wgimask.baselines.nonlocal_pixel_exchange`) spends most of a trial
swap solving for the columns M0^{-1} e_p of the swapped pixels. This runs the
same NLPE (analytic start, same seed) once with the compiled
sparse-right-hand-side solve (`IncrementalInpainter(compiled_columns=True)`,
the default) and once with SuperLU's own solve, checks that both give the
same mask, and prints milliseconds per step and their ratio. Both runs share
the compiled Woodbury update, so the ratio is that of the column solve
alone; docs/baselines.md has the figures against the code before it.

Usage:
    python -m benchmarks.speed.nlpe_speed [--sizes 64,128,256]
        [--densities 0.05,0.1,0.2]

Run with one thread (OMP_NUM_THREADS=1) and compare figures only within a
run.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from skimage import data as skdata
from skimage.transform import resize

from wgimask.baselines import analytic_mask
from wgimask.devices import cpu_description
from wgimask.masks import exchange


def _run(image, mask, steps, compiled):
    original = exchange.IncrementalInpainter

    class _Inpainter(original):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, compiled_columns=compiled, **kwargs)

    exchange.IncrementalInpainter = _Inpainter
    try:
        start = time.perf_counter()
        result = exchange.nonlocal_pixel_exchange(
            image, mask, cycles=steps / mask.sum(), seed=0
        )
        return result, time.perf_counter() - start
    finally:
        exchange.IncrementalInpainter = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="64,128,256")
    parser.add_argument("--densities", default="0.05,0.1,0.2")
    parser.add_argument(
        "--steps", type=int, default=600, help="NLPE steps per measurement"
    )
    args = parser.parse_args()
    photo = skdata.astronaut().astype(np.float64) / 255.0
    print(f"CPU: {cpu_description()}")
    print(f"NLPE steps per row: {args.steps}; astronaut photo")
    # Compile (or load the cached kernels) before timing.
    small = resize(photo, (16, 16), anti_aliasing=True)
    _run(small, analytic_mask(small, 0.1), 20, True)
    print("| size | density | compiled ms/step | SuperLU ms/step | ratio | same mask |")
    print("|---|---|---|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        image = resize(photo, (size, size), anti_aliasing=True)
        for density in (float(d) for d in args.densities.split(",")):
            mask = analytic_mask(image, density)
            fast, t_fast = _run(image, mask, args.steps, True)
            slow, t_slow = _run(image, mask, args.steps, False)
            print(
                f"| {size} | {density:g} | {1e3 * t_fast / args.steps:.3f} | "
                f"{1e3 * t_slow / args.steps:.3f} | {t_slow / t_fast:.2f}x | "
                f"{np.array_equal(fast, slow)} |"
            )


if __name__ == "__main__":
    main()
