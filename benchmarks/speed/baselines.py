"""Speed and quality of the model-based baselines on 128x128 colour photos.

For each photo crop and density (5, 10, 20 %) this prints

* the time of one homogeneous diffusion inpainting with the direct solver
  and with the CG reference (relative residual 1e-6) on the PS mask, and
  their ratio (best of several repeats, the same run);
* the time of one NLPE step (a trial swap inpainted through the low-rank
  update, refactorisations included), and how many NLPE steps fit into one
  CG inpainting;
* the time of PS and of PS+NLPE (one run each);

Times are CPU seconds of this process (``time.process_time``), which on one
thread is the wall time of an otherwise idle core; the wall time of the
whole PS+NLPE run is printed as well, since a shared machine inflates it.
* the MAE (0..255 scale) of a random mask, of PS and of PS+NLPE.

Usage:
    python -m benchmarks.speed.baselines [--photos astronaut,coffee] [--threads 1]

Thread limits are set before numpy is imported; SuperLU and scipy.sparse
run on one thread in any case.
"""

from __future__ import annotations

import argparse
import os


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--photos",
        default="astronaut,coffee",
        help="comma-separated scikit-image colour photos (astronaut, chelsea, "
        "coffee, rocket, motorcycle_left)",
    )
    parser.add_argument("--densities", default="0.05,0.1,0.2")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument(
        "--threads", type=int, default=1, help="BLAS/OpenMP threads (default 1)"
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


ARGS = _parse()
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(ARGS.threads)

import time  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.photos import crop  # noqa: E402
from wgimask.baselines import (  # noqa: E402
    CG_RTOL,
    DEFAULT_CANDIDATE_FRACTION,
    DEFAULT_CANDIDATES,
    DEFAULT_CYCLES,
    DEFAULT_REMOVAL_FRACTION,
    inpaint,
    nonlocal_pixel_exchange,
    probabilistic_sparsification,
    random_mask,
)
from wgimask.devices import cpu_description  # noqa: E402
from wgimask.diffusion.inpainting import grid, solve_cg, solve_direct  # noqa: E402


def best_time(fn, repeats: int) -> tuple[float, object]:
    """Smallest CPU time of several calls (the machine may be shared)."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.process_time()
        out = fn()
        best = min(best, time.process_time() - t)
    return best, out


def _load() -> str:
    """System load average; other processes share a small machine."""
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def mae255(f: np.ndarray, mask: np.ndarray) -> float:
    return 255.0 * float(np.abs(inpaint(f, mask) - f).mean())


def main() -> None:
    photos = [p.strip() for p in ARGS.photos.split(",") if p.strip()]
    densities = [float(d) for d in ARGS.densities.split(",")]
    size = ARGS.size
    command = "python -m benchmarks.speed.baselines"
    print(f"# {size}x{size} colour crops; command: {command}")
    print(f"device: CPU {cpu_description()}")
    print(f"load average at start (1/5/15 min): {_load()}")
    print(
        f"threads used: {ARGS.threads} (BLAS/OpenMP limit; SuperLU and "
        "scipy.sparse are single-threaded)"
    )
    print(
        f"PS p={DEFAULT_CANDIDATE_FRACTION}, q={DEFAULT_REMOVAL_FRACTION}; "
        f"NLPE {DEFAULT_CYCLES} cycles of |mask| swaps, {DEFAULT_CANDIDATES} "
        f"candidates; CG to relative residual {CG_RTOL:g}; seed {ARGS.seed}"
    )
    print()
    header = (
        "| density | photo | direct ms | CG ms (iters) | CG/direct | NLPE ms/step "
        "| CG/step | PS s | PS+NLPE s | (wall s) | MAE random | MAE PS "
        "| MAE PS+NLPE |"
    )
    print(header)
    print("|" + "---|" * 13)
    rows = []
    for d in densities:
        for name in photos:
            f = crop(name, ARGS.size)
            h, w, c = f.shape
            n_mask = round(d * h * w)

            wall0, t0 = time.perf_counter(), time.process_time()
            ps = probabilistic_sparsification(f, d, seed=ARGS.seed)
            t_ps = time.process_time() - t0
            t0 = time.process_time()
            nl = nonlocal_pixel_exchange(f, ps, seed=ARGS.seed)
            t_nlpe = time.process_time() - t0
            wall = time.perf_counter() - wall0

            g = grid(h, w)
            known, values = ps.ravel(), f.reshape(h * w, c)
            t_direct, _ = best_time(
                lambda g=g, k=known, v=values: solve_direct(g, k, v), 5
            )
            t_cg, (_, iters) = best_time(
                lambda g=g, k=known, v=values: solve_cg(g, k, v), 3
            )
            swaps = DEFAULT_CYCLES * n_mask
            t_swap = t_nlpe / swaps

            row = dict(
                d=d,
                t_direct=t_direct,
                t_cg=t_cg,
                t_swap=t_swap,
                t_ps=t_ps,
                t_all=t_ps + t_nlpe,
                wall=wall,
                e_rnd=mae255(f, random_mask(f.shape, d, seed=ARGS.seed)),
                e_ps=mae255(f, ps),
                e_nl=mae255(f, nl),
            )
            rows.append(row)
            print(
                f"| {d:.0%} | {name} | {1e3 * t_direct:.1f} "
                f"| {1e3 * t_cg:.1f} ({iters}) "
                f"| {t_cg / t_direct:.1f} | {1e3 * t_swap:.2f} | {t_cg / t_swap:.0f} "
                f"| {t_ps:.1f} | {t_ps + t_nlpe:.1f} | ({wall:.0f}) "
                f"| {row['e_rnd']:.2f} "
                f"| {row['e_ps']:.2f} | {row['e_nl']:.2f} |",
                flush=True,
            )
    print()
    print(f"load average at end (1/5/15 min): {_load()}")
    print()
    print("Mean over photos:")
    print()
    print(
        "| density | direct ms | CG ms | CG/direct | NLPE ms/step | CG/step "
        "| PS s | PS+NLPE s | MAE random | MAE PS | MAE PS+NLPE |"
    )
    print("|" + "---|" * 11)
    for d in densities:
        sel = [r for r in rows if r["d"] == d]

        def mean(key: str, sel=sel) -> float:
            return float(np.mean([r[key] for r in sel]))

        print(
            f"| {d:.0%} | {1e3 * mean('t_direct'):.1f} | {1e3 * mean('t_cg'):.1f} "
            f"| {mean('t_cg') / mean('t_direct'):.1f} | {1e3 * mean('t_swap'):.2f} "
            f"| {mean('t_cg') / mean('t_swap'):.0f} "
            f"| {mean('t_ps'):.1f} | {mean('t_all'):.1f} | {mean('e_rnd'):.2f} "
            f"| {mean('e_ps'):.2f} | {mean('e_nl'):.2f} |"
        )


if __name__ == "__main__":
    main()
