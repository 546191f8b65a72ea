"""Where the time of a joint training step (or of inference) goes, by op type.

    python -m benchmarks.speed.profile_step               # shipped size, 64 px, b16
    python -m benchmarks.speed.profile_step --what=inference --model_size=paper \\
        --image_size=128 --batch=32

Runs a few steps under TensorFlow's profiler and prints the self time of each op
type (TensorFlow's "framework_op_stats" tool), largest first, with the share
spent in the compute-bound ops (convolutions and matmuls) against the rest
(copies, concatenations, element-wise ops), which run at memory speed and are
what keeps the step below the matmul peak.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import tempfile

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf
from absl import logging as absl_logging
from tensorflow.python.profiler.internal import (
    _pywrap_profiler_plugin as profiler_plugin,
)

from wgimask.nn.networks import MODEL_SIZES, InpaintingGenerator, MaskGenerator
from wgimask.serve import export
from wgimask.train import data
from wgimask.train.loop import Trainer, TrainingConfig

# Op types doing the FLOPs (oneDNN's fused convolutions included).
COMPUTE_OPS = ("Conv2D", "MatMul", "Conv2DBackprop", "_Fused", "_MklFused", "_Mkl")


def _is_compute(op_type: str) -> bool:
    return any(op_type.startswith(p) for p in COMPUTE_OPS) and (
        "Conv" in op_type or "MatMul" in op_type
    )


def op_type_times(logdir: str) -> dict[str, float]:
    """Self time (microseconds) per op type on the host, from a profile."""
    paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    if not paths:
        raise FileNotFoundError(f"no profile written under {logdir}")
    raw, ok = profiler_plugin.xspace_to_tools_data(
        paths, "framework_op_stats", {"use_saved_result": False}
    )
    if not ok:
        raise RuntimeError("TensorFlow's profiler could not read the profile")
    tables = json.loads(raw)
    # The first table is for the host (CPU) ops; its rows are gviz rows.
    table = tables[0] if isinstance(tables, list) else tables
    columns = [c["id"] for c in table["cols"]]
    times: dict[str, float] = collections.defaultdict(float)
    for row in table["rows"]:
        values = dict(zip(columns, (cell.get("v") for cell in row["c"]), strict=True))
        if values.get("host_or_device", "Host") != "Host":
            continue
        times[values["type"]] += float(values["total_self_time"])
    return dict(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--what", choices=("training", "inference"), default="training")
    parser.add_argument("--model_size", default="small", choices=list(MODEL_SIZES))
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    absl_logging.set_verbosity(absl_logging.ERROR)

    with tempfile.TemporaryDirectory() as tmp:
        if args.what == "training":
            config = TrainingConfig(
                model_size=args.model_size,
                image_size=args.image_size,
                batch_size=args.batch,
                model_dir=os.path.join(tmp, "run"),
            )
            trainer = Trainer(config)
            photos = data.embedded_photos(3)
            batches = iter(
                trainer.add_noise(
                    data.training_dataset(photos, args.image_size, args.batch, seed=0)
                )
            )

            def run():
                float(trainer.train_step(next(batches))["mae"])

        else:
            generator = InpaintingGenerator(args.image_size, 3, args.model_size)
            confidence = MaskGenerator(
                args.image_size, 3, args.model_size
            ).confidence_model()
            infer = tf.function(lambda x: export.mask_gan(generator, confidence, x))
            image = tf.random.uniform((args.batch, args.image_size, args.image_size, 3))

            def run():
                infer(image)["inpainted"].numpy()

        run()
        run()  # tracing and warm-up stay out of the profile
        logdir = os.path.join(tmp, "profile")
        tf.profiler.experimental.start(logdir)
        for _ in range(args.steps):
            run()
        tf.profiler.experimental.stop()
        times = op_type_times(logdir)

    # Idle time of the thread pools is not work: left out of the shares.
    idle = times.pop("IDLE", 0.0)
    total = sum(times.values())
    compute = sum(t for op, t in times.items() if _is_compute(op))
    print(
        f"{args.what}, {args.model_size}, {args.image_size} px, batch {args.batch}: "
        f"{total / args.steps / 1e3:.1f} ms of op self time per step "
        f"(all threads; {idle / args.steps / 1e3:.1f} ms idle not counted)"
    )
    print(f"{'op type':40s} {'ms/step':>9s} {'share':>6s}")
    for op, t in sorted(times.items(), key=lambda kv: -kv[1])[: args.top]:
        mark = " (compute)" if _is_compute(op) else ""
        print(f"{op:40s} {t / args.steps / 1e3:9.1f} {t / total:6.1%}{mark}")
    print(
        f"convolutions and matmuls: {compute / total:.1%} of the op time; "
        f"everything else: {1 - compute / total:.1%}"
    )


if __name__ == "__main__":
    main()
