"""What one densification step costs on a large photo, part by part.

    python -m benchmarks.speed.densification_steps PHOTO [--density=0.1] [--steps=4]

Times, for the first ``--steps`` steps of densification
(`wgimask.masks.densification.grow_mask`, from the analytic start of
`densification_mask`) on PHOTO (colour, as the command reads it): the start
mask once, then per step the warm-started solve (`inpainting.solve_checked`)
and the ranking (the rest of the step: error, maximum filter, scores, new
points). Then one cold and one warm solve of the last mask with the channels
on one core and on all usable cores (`multigrid.solve_grid_multigrid`). The
CPU is named in the output; run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import time

from wgimask import image_files
from wgimask.arrays import as_image, target_count
from wgimask.devices import cpu_description
from wgimask.diffusion import multigrid
from wgimask.masks import densification as dn
from wgimask.masks.analytic import analytic_mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo")
    parser.add_argument("--density", type=float, default=0.1)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    print(f"CPU: {cpu_description()}")
    f, _ = as_image(image_files.load_image(args.photo, 3))
    h, w, _ = f.shape
    dn.densification_mask(f[:256, :256], args.density)  # load the kernels
    count = max(1, round(dn.DEFAULT_START * target_count(args.density, h * w)))
    t = time.perf_counter()
    known = analytic_mask(f, count / (h * w), seed=0).ravel().copy()
    print(f"{w}x{h}, D={args.density:g}: start mask {time.perf_counter() - t:.2f} s")
    target = int(known.sum())
    for _ in range(args.steps):
        target += max(1, round(dn.DEFAULT_GROWTH * target))

    solves, ends, guesses = [], [time.perf_counter()], []
    solve = dn.solve_checked

    def timed(*a, **kw):
        t = time.perf_counter()
        u = solve(*a, **kw)
        solves.append(time.perf_counter() - t)
        guesses[:] = [u]
        return u

    dn.solve_checked = timed  # grow_mask looks the solver up in its module
    try:
        mask = dn.grow_mask(
            f, known, target, growth=dn.DEFAULT_GROWTH,
            radius=dn.densification_radius(args.density),
            progress=lambda done, total: ends.append(time.perf_counter()),
        )  # fmt: skip
    finally:
        dn.solve_checked = solve
    for step, seconds in enumerate(solves, start=1):
        rest = ends[step] - ends[step - 1] - seconds
        print(f"step {step}: solve {seconds:.2f} s, ranking {rest:.2f} s")
    cores = multigrid.usable_cpu_count
    for label, count in (("one core", 1), ("all cores", cores())):
        multigrid.usable_cpu_count = lambda count=count: count
        t = time.perf_counter()
        multigrid.solve_grid_multigrid(mask, f, rtol=dn.RANKING_RTOL)
        cold = time.perf_counter() - t
        t = time.perf_counter()
        multigrid.solve_grid_multigrid(mask, f, rtol=dn.RANKING_RTOL, x0=guesses[0])
        warm = time.perf_counter() - t
        print(f"solve on {label} ({count}): cold {cold:.2f} s, warm {warm:.2f} s")
    multigrid.usable_cpu_count = cores


if __name__ == "__main__":
    main()
