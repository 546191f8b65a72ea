"""SSIM of a large photo: the compiled strips against scipy's filters.

    python -m benchmarks.speed.ssim_speed PHOTO [--repeats=2]

`wgimask.evaluation.metrics.ssim` of PHOTO (colour, as the command reads
it) against a copy with noise added, through the compiled kernel
(`metrics._ssim_rows_sum`, the default with numba) and through scipy's
`gaussian_filter` (the path without numba), in the same run: the best of
``--repeats`` wall times of each, their ratio, the two values and their
difference, and the growth of the process's peak memory. The CPU is named
in the output; run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from wgimask import image_files
from wgimask.devices import cpu_description
from wgimask.evaluation import metrics


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(f"CPU: {cpu_description()}")
    image = image_files.load_image(args.photo, 3).astype(np.float64)
    noise = np.random.default_rng(0).normal(0.0, 0.02, image.shape)
    test = np.clip(image + noise, 0.0, 1.0)
    metrics.ssim(image[:1100, :1000], test[:1100, :1000])  # load the kernel
    h, w, _ = image.shape
    print(f"{args.photo}: {w}x{h}")
    results = {}
    compiled = metrics.NUMBA
    for name, use in (("compiled", True), ("scipy", False)):
        if use and not compiled:
            print("compiled: numba is not installed")
            continue
        metrics.NUMBA = use and compiled
        before = _peak_gb()
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            value = metrics.ssim(image, test)
            times.append(time.perf_counter() - t)
        results[name] = (min(times), value)
        print(
            f"{name}: {min(times):.2f} s (best of {args.repeats}), SSIM {value:.10f}, "
            f"peak memory +{max(0.0, _peak_gb() - before):.2f} GB",
            flush=True,
        )
    metrics.NUMBA = compiled
    if len(results) == 2:
        (fast, a), (slow, b) = results["compiled"], results["scipy"]
        print(f"ratio scipy / compiled: {slow / fast:.1f}x; difference {a - b:.1e}")


if __name__ == "__main__":
    main()
