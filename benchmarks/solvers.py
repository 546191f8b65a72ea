"""Compares ways to solve the homogeneous diffusion system on 128x128 photos.

Candidates for the direct solver, all from scipy (the baselines use nothing
else), against the CG reference:

* SuperLU (``splu``) of the reduced system with SuperLU's COLAMD ordering;
* SuperLU of the reduced system in nested-dissection order without
  pivoting (what ``inpaint(solver="direct")`` uses);
* LAPACK banded Cholesky (``solveh_banded``) of the full-grid SPD system
  (mask rows as identity rows), bandwidth = image width;
* CG to relative residual 1e-6 (``inpaint(solver="cg")``).

Each time is the smallest CPU time of several runs (one thread), assembly
included; the last column is the largest deviation from the chosen solver.

Usage:
    python benchmarks/solvers.py [--photos astronaut,coffee] [--density 0.1]
"""

from __future__ import annotations

import argparse
import os
import sys

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import time  # noqa: E402

import numpy as np  # noqa: E402
import scipy.linalg as sla  # noqa: E402
import scipy.sparse.linalg as spla  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from photos import crop  # noqa: E402

from wgimask.baselines import probabilistic_sparsification, random_mask  # noqa: E402
from wgimask.baselines.diffusion import (  # noqa: E402
    grid,
    reduced_system,
    solve_cg,
    solve_direct,
)
from wgimask.devices import cpu_description  # noqa: E402


def superlu_colamd(g, known, values):
    u = values.copy()
    a, b, unknown = reduced_system(g, known, values, ordered=False)
    u[unknown] = spla.splu(a, permc_spec="COLAMD").solve(b)
    return u


def banded_cholesky(g, known, values):
    h, w = g.height, g.width
    n = h * w
    unknown = ~known
    # Upper banded storage of the full-grid SPD system: row i of ab holds
    # diagonal offset w - i.
    ab = np.zeros((w + 1, n))
    ab[w] = np.where(unknown, g.degree, 1.0)
    idx = np.arange(n).reshape(h, w)
    right = np.zeros(n, dtype=bool)
    right[idx[:, :-1].ravel()] = True
    couple_r = right & unknown & np.roll(unknown, -1)
    ab[w - 1, 1:] = -couple_r[:-1].astype(np.float64)
    down = np.zeros(n, dtype=bool)
    down[idx[:-1, :].ravel()] = True
    couple_d = down & unknown & np.roll(unknown, -w)
    ab[0, w:] = -couple_d[:-w].astype(np.float64)
    coupling = np.zeros_like(values)
    src, dst = g.src, g.dst
    m1 = unknown[src] & known[dst]
    np.add.at(coupling, src[m1], values[dst[m1]])
    m2 = unknown[dst] & known[src]
    np.add.at(coupling, dst[m2], values[src[m2]])
    rhs = np.where(known[:, None], values, coupling)
    return sla.solveh_banded(ab, rhs, lower=False, check_finite=False)


def best(fn, repeats):
    out, t_best = None, float("inf")
    for _ in range(repeats):
        t = time.process_time()
        out = fn()
        t_best = min(t_best, time.process_time() - t)
    return t_best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", default="astronaut,coffee")
    parser.add_argument("--density", type=float, default=0.1)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    print(f"device: CPU {cpu_description()}; threads used: 1")
    print(f"load average (1/5/15 min): {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print()
    print(
        "| photo | mask | SuperLU COLAMD ms | SuperLU ND ms (chosen) "
        "| banded Cholesky ms | CG ms | max deviation |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in [p.strip() for p in args.photos.split(",") if p.strip()]:
        f = crop(name, args.size)
        h, w, c = f.shape
        g = grid(h, w)
        values = f.reshape(h * w, c)
        masks = {
            "random": random_mask(f.shape, args.density, seed=0),
            "PS": probabilistic_sparsification(f, args.density, seed=0),
        }
        for kind, mask in masks.items():
            args3 = (g, mask.ravel(), values)
            t_nd, ref = best(lambda a=args3: solve_direct(*a), 7)
            t_col, u_col = best(lambda a=args3: superlu_colamd(*a), 5)
            t_band, u_band = best(lambda a=args3: banded_cholesky(*a), 5)
            t_cg, (u_cg, _) = best(lambda a=args3: solve_cg(*a), 3)
            dev = max(np.abs(u - ref).max() for u in (u_col, u_band, u_cg))
            print(
                f"| {name} | {kind} {args.density:.0%} | {1e3 * t_col:.1f} "
                f"| {1e3 * t_nd:.1f} | {1e3 * t_band:.1f} | {1e3 * t_cg:.1f} "
                f"| {dev:.1e} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
