"""Speed of the networks against the machine's float32 matmul peak.

    python benchmarks/networks.py --quick --output=r.json

Measures, in one run: the matmul peak (GFLOP/s of a large float32 matmul);
for each model size, at 64 and 128 px and batch 1 and 32, mask-GAN inference
(mask generator, then inpainting generator) and the joint training step; and
the input pipeline alone. Each figure is printed with its ratio to the peak.

FLOPs are counted analytically (`wgimask.networks.forward_flops`: 2 per
multiply-add of convolutions and dense layers). A training step is counted as
3x the forward FLOPs of every network pass it contains (forward, and backward
with respect to inputs and weights): m once, g once, d twice.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from wgimask import data, export  # noqa: E402
from wgimask.devices import cpu_description  # noqa: E402
from wgimask.networks import (  # noqa: E402
    Critic,
    InpaintingGenerator,
    MaskGenerator,
    forward_flops,
)
from wgimask.training import Trainer, TrainingConfig  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_boolean("quick", False, "Fewer sizes and repeats (under 2 minutes).")
flags.DEFINE_string("output", None, "Write the figures to this JSON file.")
flags.DEFINE_boolean("jit_compile", False, "Compile with XLA.")


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: tracing and first allocation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_peak(repeats: int) -> float:
    """GFLOP/s of a 2048x2048 float32 matmul."""
    n = 2048
    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    seconds = _median_seconds(lambda: tf.linalg.matmul(a, b).numpy(), repeats)
    return 2 * n**3 / seconds / 1e9


def inference(size: str, px: int, batch: int, repeats: int, jit: bool) -> dict:
    g = InpaintingGenerator(None, 3, size)
    m = MaskGenerator(None, 3, size)
    confidence = m.confidence_model()
    flops = forward_flops(InpaintingGenerator(px, 3, size)) + forward_flops(
        MaskGenerator(px, 3, size)
    )
    fn = tf.function(
        lambda x: export.mask_gan(g, confidence, x)["inpainted"], jit_compile=jit
    )
    images = tf.random.uniform((batch, px, px, 3))
    seconds = _median_seconds(lambda: fn(images).numpy(), repeats)
    return {"flops": flops * batch, "seconds": seconds}


def training_step(size: str, px: int, batch: int, repeats: int, jit: bool) -> dict:
    config = TrainingConfig(
        image_size=px,
        batch_size=batch,
        model_size=size,
        model_dir="/tmp/wgimask-benchmark",
        jit_compile=jit,
    )
    trainer = Trainer(config)
    images = [img for img in data.embedded_photos(3)]
    dataset = trainer.add_noise(data.training_dataset(images, px, batch, seed=0))
    batch_data = next(iter(dataset))
    seconds = _median_seconds(
        lambda: trainer.train_step(batch_data)["mask_loss"].numpy(), repeats
    )
    g = forward_flops(InpaintingGenerator(px, 3, size))
    m = forward_flops(MaskGenerator(px, 3, size))
    d = forward_flops(Critic(px, 3, size))
    return {"flops": 3 * (g + m + 2 * d) * batch, "seconds": seconds}


def input_pipeline(px: int, batch: int, batches: int) -> float:
    """Images per second of the training input pipeline alone."""
    dataset = data.training_dataset(data.embedded_photos(3), px, batch, seed=0)
    iterator = iter(dataset)
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch / (time.perf_counter() - start)


def main(argv):
    del argv
    quick = FLAGS.quick
    repeats = 2 if quick else 5
    sizes = ["tiny", "small"] + ([] if quick else ["medium", "paper"])
    print(f"device: {cpu_description()}; TensorFlow {tf.__version__}")
    peak = matmul_peak(repeats)
    print(f"float32 matmul peak: {peak:.1f} GFLOP/s")
    runs = []

    def record(what, size, px, batch, result):
        gflops = result["flops"] / result["seconds"] / 1e9
        entry = {
            "what": what,
            "model_size": size,
            "image_size": px,
            "batch": batch,
            "images_per_second": batch / result["seconds"],
            "gflops": gflops,
            "ratio_to_peak": gflops / peak,
        }
        runs.append(entry)
        print(
            f"{what:10s} {size:7s} {px:4d} px batch {batch:3d}: "
            f"{entry['images_per_second']:9.1f} img/s, {gflops:6.1f} GFLOP/s, "
            f"{entry['ratio_to_peak']:.2f} of peak"
        )

    for size in sizes:
        for px in (64, 128):
            for batch in (1, 32):
                if quick and size == "small" and batch == 1:
                    continue
                record(
                    "inference",
                    size,
                    px,
                    batch,
                    inference(size, px, batch, repeats, FLAGS.jit_compile),
                )
        px, batch = 64, 32 if not quick else 16
        record(
            "train_step",
            size,
            px,
            batch,
            training_step(size, px, batch, repeats, FLAGS.jit_compile),
        )
    for px in (64, 128):
        rate = input_pipeline(px, 32, 20 if quick else 100)
        runs.append(
            {
                "what": "input_pipeline",
                "model_size": None,
                "image_size": px,
                "batch": 32,
                "images_per_second": rate,
                "gflops": None,
                "ratio_to_peak": None,
            }
        )
        print(f"input      {px:4d} px batch  32: {rate:9.1f} img/s")
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            json.dump(
                {"matmul_gflops": peak, "device": cpu_description(), "runs": runs},
                f,
                indent=2,
            )


if __name__ == "__main__":
    app.run(main)
