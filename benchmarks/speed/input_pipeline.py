"""Throughput of the training input pipeline on the embedded photos.

Prints crops per second, wall time and process CPU time per batch for random
crops of scikit-image's photos (64 px and 128 px, batch 32 by default). A
training step that takes about a second per batch needs 32 crops per second,
so the printed ratio says how far the pipeline is from being the bottleneck.

    python -m benchmarks.speed.input_pipeline [--batches 200] [--channels 3]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from wgimask.train import data


def measure(images, size: int, batch_size: int, batches: int) -> dict[str, float]:
    """Times `batches` batches after a short warm-up."""
    start = time.perf_counter()
    dataset = data.training_dataset(images, size, batch_size, seed=0)
    iterator = iter(dataset)
    next(iterator)
    build_s = time.perf_counter() - start
    for _ in range(10):
        next(iterator)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        batch = next(iterator)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert batch.shape == (batch_size, size, size, images[0].shape[-1])
    return {
        "crops_per_s": batches * batch_size / wall,
        "wall_ms_per_batch": 1e3 * wall / batches,
        "cpu_ms_per_batch": 1e3 * cpu / batches,
        "build_s": build_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--channels", type=int, default=3, choices=(1, 3))
    parser.add_argument(
        "--step_seconds",
        type=float,
        default=0.5,
        help="training step time to compare with (CPU: about 0.5-2 s per batch)",
    )
    args = parser.parse_args()

    start = time.perf_counter()
    photos = data.embedded_photos(args.channels)
    print(
        f"decoded {len(photos)} embedded photos "
        f"({sum(p.shape[0] * p.shape[1] for p in photos) / 1e6:.2f} Mpixel) "
        f"in {time.perf_counter() - start:.2f} s; {os.cpu_count()} CPU cores"
    )
    print(
        f"{'crop':>6} {'batch':>5} {'crops/s':>9} {'wall ms/batch':>14} "
        f"{'CPU ms/batch':>13} {'x step need':>12} {'build s':>8}"
    )
    for size in args.sizes:
        result = measure(photos, size, args.batch_size, args.batches)
        need = args.batch_size / args.step_seconds
        print(
            f"{size:>4}px {args.batch_size:>5} {result['crops_per_s']:>9.0f} "
            f"{result['wall_ms_per_batch']:>14.2f} {result['cpu_ms_per_batch']:>13.2f} "
            f"{result['crops_per_s'] / need:>11.0f}x {result['build_s']:>8.2f}"
        )
    print(
        f"('x step need': throughput over the {args.batch_size / args.step_seconds:.0f}"
        f" crops/s that a {args.step_seconds} s training step consumes)"
    )


if __name__ == "__main__":
    main()
