"""Times the homogeneous diffusion solvers from 128x128 crops to whole 4K photos.

For each image size and mask (random and analytic, 5 % by default) it runs
``inpaint``'s solvers on one thread:

* ``direct``: SuperLU of the reduced system in nested-dissection order;
* ``cg``: plain CG to relative residual 1e-6 (the paper's reference);
* ``multigrid_scipy``: CG preconditioned by a smoothed-aggregation V-cycle
  in scipy, to the same relative residual;
* ``multigrid``: CG preconditioned by the compiled (numba) aggregation
  V-cycle on the pixel grid, to the same relative residual.

The compiled kernels are loaded (or compiled) in the parent process before
the timed children fork, so the table holds solve times only; the cost of
compiling them (an empty numba cache) and of loading them from the cache in
a new process is measured separately, in fresh interpreters, and printed
first.

Every solve runs in a forked process, so its peak memory (the growth of the
process's maximum resident set during the solve) can be measured; times are
CPU seconds of that process (best of ``--repeats`` below 1 megapixel). The
deviation columns are the largest absolute difference from the direct
solution (from the multigrid one where the direct solver is skipped). The
load average is printed before and after: the machine may be shared.

The photo: a 3840x2160 wallpaper of Debian's lomiri-wallpapers-16.04 when
installed (the data recipe installs it), else scikit-image's astronaut;
each size is a Lanczos resize of its centre crop to that aspect ratio.

Usage:
    python -m benchmarks.speed.solvers [--sizes 128x128,512x512,768x512,3840x2160]
        [--density 0.05] [--direct_max_pixels 1000000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import sys

for _var in (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
):
    os.environ[_var] = "1"

import multiprocessing as mp  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from benchmarks.speed.scipy_multigrid import solve_multigrid  # noqa: E402
from wgimask.baselines import analytic_mask, random_mask  # noqa: E402
from wgimask.diffusion.inpainting import (  # noqa: E402
    CG_RTOL,
    grid,
    solve_cg,
    solve_direct,
)
from wgimask.diffusion.multigrid import solve_grid_multigrid  # noqa: E402

SOLVER_NAMES = ("direct", "cg", "multigrid_scipy", "multigrid")

# Run in a fresh interpreter: imports the compiled multigrid and times its
# first solve (compiling or loading the kernels) and a second one.
_FIRST_CALL = """
import time
t0 = time.perf_counter()
import numpy as np
from wgimask.diffusion.multigrid import solve_grid_multigrid
t1 = time.perf_counter()
f = np.random.default_rng(0).random((64, 64, 3))
m = np.random.default_rng(1).random((64, 64)) < 0.05
solve_grid_multigrid(m, f, rtol=1e-6)
t2 = time.perf_counter()
solve_grid_multigrid(m, f, rtol=1e-6)
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""


def first_call_seconds(cache_dir: str) -> tuple[float, float, float]:
    """(import, first 64x64 solve, second solve) wall seconds, new process."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(
        [sys.executable, "-c", _FIRST_CALL],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return tuple(float(v) for v in out[-3:])


PHOTO = Path("/usr/share/backgrounds/umang_by_Abhishek_Mudgal.jpg")


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (no TensorFlow import)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def load_photo(width: int, height: int, path: Path | None) -> tuple[np.ndarray, str]:
    """The photo, centre-cropped to the aspect ratio and resized, in [0, 1]."""
    if path is not None and path.is_file():
        img, name = Image.open(path).convert("RGB"), path.name
    else:
        from skimage import data

        img, name = Image.fromarray(data.astronaut()), "skimage astronaut"
    w0, h0 = img.size
    scale = min(w0 / width, h0 / height)
    cw, ch = round(width * scale), round(height * scale)
    left, top = (w0 - cw) // 2, (h0 - ch) // 2
    img = img.crop((left, top, left + cw, top + ch))
    img = img.resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.float64) / 255.0, name


def _child(solver, values, known, h, w, out_path, queue):
    g = grid(h, w)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.process_time()
    if solver == "direct":
        u, iterations = solve_direct(g, known, values), 0
    elif solver == "cg":
        u, iterations = solve_cg(g, known, values)
    elif solver == "multigrid_scipy":
        u, iterations = solve_multigrid(g, known, values)
    else:
        u, iterations = solve_grid_multigrid(
            known.reshape(h, w), values.reshape(h, w, -1), rtol=CG_RTOL
        )
        u = u.reshape(h * w, -1)
    seconds = time.process_time() - t
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    np.save(out_path, u)
    queue.put((seconds, (after - before) / 1024.0, iterations))


def run(solver, values, known, h, w, repeats, tmp):
    """Best CPU time, peak memory growth (MB), iterations, the result and the
    median CPU time over the repeats."""
    ctx = mp.get_context("fork")
    best = None
    times = []
    out_path = os.path.join(tmp, f"{solver}.npy")
    grid(h, w)  # built in the parent, so the children share it
    for _ in range(repeats):
        queue = ctx.Queue()
        proc = ctx.Process(
            target=_child, args=(solver, values, known, h, w, out_path, queue)
        )
        proc.start()
        result = queue.get()
        proc.join()
        times.append(result[0])
        if best is None or result[0] < best[0]:
            best = result
    return (*best, np.load(out_path), float(np.median(times)))


def _cell(res, name, its=True):
    """A table cell: seconds (peak MB[, iterations]) or 'skipped'."""
    if name not in res:
        return "skipped"
    t, mb, n = res[name][:3]
    return f"{t:.3f} ({mb:.0f}" + (f", {n})" if its else ")")


def _dev(res, name, ref):
    """Largest absolute deviation of a solver's result from the reference."""
    if name not in res or ref is res[name][3]:
        return "-"
    return f"{np.abs(res[name][3] - ref).max():.1e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="128x128,512x512,768x512,3840x2160")
    parser.add_argument("--density", type=float, default=0.05)
    parser.add_argument("--masks", default="random,analytic")
    parser.add_argument("--photo", default=str(PHOTO))
    parser.add_argument(
        "--direct_max_pixels",
        type=int,
        default=1_000_000,
        help="Skip the direct solver above this many pixels (its fill grows "
        "as N log N: gigabytes at 4K).",
    )
    parser.add_argument(
        "--cg_max_pixels",
        type=int,
        default=2_000_000,
        help="Skip plain CG above this many pixels (at 4K with an analytic "
        "mask it needs thousands of iterations: many minutes).",
    )
    parser.add_argument(
        "--scipy_max_pixels",
        type=int,
        default=2_000_000,
        help="Skip the scipy multigrid above this many pixels (about 50 s "
        "and 4.4 GB at 4K).",
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--skip_first_call",
        action="store_true",
        help="Do not measure the compile and cache-load times.",
    )
    args = parser.parse_args()
    print(f"device: CPU {cpu_name()}; threads used: 1")
    print(f"load average (1/5/15 min): {_load()}")
    if not args.skip_first_call:
        with tempfile.TemporaryDirectory() as cache:
            cold = first_call_seconds(cache)
            warm = first_call_seconds(cache)
        print(
            "compiled multigrid, new process (wall s): import "
            f"{cold[0]:.2f}, first 64x64 solve with an empty cache (compiles) "
            f"{cold[1]:.2f}, with a filled cache (loads) {warm[1]:.2f}, "
            f"second solve {warm[2]:.4f}"
        )
    # Load the compiled kernels once here, so the forked children do not: a
    # solve that coarsens, so that the coarsening kernel is loaded too.
    rng = np.random.default_rng(0)
    solve_grid_multigrid(
        rng.random((64, 64)) < 0.05, rng.random((64, 64, 3)), rtol=CG_RTOL
    )
    print()
    print(
        "| size | mask | direct s (MB) | CG s (MB, its) "
        "| scipy multigrid s (MB, its) | multigrid s (MB, its) "
        "| CG / multigrid | max dev. CG | max dev. scipy mg | max dev. multigrid |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    headline = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in [s.strip() for s in args.sizes.split(",") if s.strip()]:
            w, h = (int(v) for v in size.split("x"))
            f, photo = load_photo(w, h, Path(args.photo))
            values = f.reshape(h * w, 3)
            repeats = args.repeats if h * w < 1_000_000 else 1
            for kind in [m.strip() for m in args.masks.split(",") if m.strip()]:
                if kind == "random":
                    mask = random_mask(f.shape, args.density, seed=0)
                else:
                    mask = analytic_mask(f, args.density, seed=0)
                known = mask.ravel()
                res = {}
                for solver in SOLVER_NAMES:
                    limit = {
                        "direct": args.direct_max_pixels,
                        "cg": args.cg_max_pixels,
                        "multigrid_scipy": args.scipy_max_pixels,
                    }.get(solver)
                    if limit is not None and h * w > limit:
                        continue
                    res[solver] = run(solver, values, known, h, w, repeats, tmp)
                ref = res.get("direct", res["multigrid"])[3]

                ratio = (
                    f"{res['cg'][0] / res['multigrid'][0]:.1f}x" if "cg" in res else "-"
                )
                cells = [
                    f"{w}x{h}",
                    f"{kind} {args.density:.0%}",
                    _cell(res, "direct", False),
                    _cell(res, "cg"),
                    _cell(res, "multigrid_scipy"),
                    _cell(res, "multigrid"),
                    ratio,
                    _dev(res, "cg", ref),
                    _dev(res, "multigrid_scipy", ref),
                    _dev(res, "multigrid", ref),
                ]
                print("| " + " | ".join(cells) + " |", flush=True)
                if (w, h) == (768, 512) and "cg" in res:
                    headline.append((kind, res["multigrid"], res["cg"]))
    print(f"\nload average after (1/5/15 min): {_load()}")
    print(f"photo: {photo}; times: best of {args.repeats} below 1 megapixel")
    for kind, mg, cg in headline:
        print(
            f"768x512 colour photo, {kind} {args.density:.0%} mask, one thread: "
            f"multigrid {mg[0]:.3f} s (median {mg[4]:.3f}; target <= 0.25 s), "
            f"CG {cg[0]:.3f} s (median {cg[4]:.3f}), "
            f"ratio {cg[0] / mg[0]:.1f}x (target >= 10x)"
        )


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
