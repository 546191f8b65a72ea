"""Quality and CPU time of PS for several candidate/removal fractions p = q.

The reference implementation of PS uses p = q = 0.02; the library default
is larger for speed. This script measures what that costs in MAE.

Usage:
    python -m benchmarks.studies.ps_fractions [--photos astronaut,coffee]
        [--density 0.1] [--fractions 0.2,0.1,0.05,0.02]

Runs on one thread (BLAS/OpenMP limits are set before numpy is imported).
"""

from __future__ import annotations

import argparse
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import time  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.photos import crop  # noqa: E402
from wgimask.baselines import inpaint, probabilistic_sparsification  # noqa: E402
from wgimask.devices import cpu_description  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", default="astronaut,coffee")
    parser.add_argument("--density", type=float, default=0.1)
    parser.add_argument("--fractions", default="0.2,0.1,0.05,0.02")
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    print(f"device: CPU {cpu_description()}; threads used: 1")
    print(f"PS at density {args.density:.0%}, {args.size}x{args.size} crops, seed 0")
    print()
    print("| p = q | photo | PS CPU s | MAE (0..255) |")
    print("|---|---|---|---|")
    for frac in [float(x) for x in args.fractions.split(",")]:
        for name in [p.strip() for p in args.photos.split(",") if p.strip()]:
            f = crop(name, args.size)
            t0 = time.process_time()
            mask = probabilistic_sparsification(
                f, args.density, candidate_fraction=frac, removal_fraction=frac
            )
            cpu = time.process_time() - t0
            err = 255.0 * float(np.abs(inpaint(f, mask) - f).mean())
            print(f"| {frac} | {name} | {cpu:.1f} | {err:.2f} |", flush=True)


if __name__ == "__main__":
    main()
