"""Speed of the mask GAN: inference, the joint training step and the input pipeline.

In one run it measures the machine's float32 matmul peak and, next to it:

* mask-GAN inference (mask generator, hard rounding, inpainting generator: the
  path of the exported ``mask_gan`` SavedModel) for each model size at 64 and
  128 px, batch 1 and 32, and the mask generator alone (``mask_inference``, the
  mask as the paper's Table 4 times it against PS and NLPE);
* the joint training step (`Trainer.train_step`: forward passes, the three
  losses, gradients and Adam updates of all three networks) at the training
  crop size;
* the input pipeline of training alone (random crops of the embedded photos plus
  the per-batch noise), and how much faster it is than the training step
  consumes images;
* the exact diffusion operator (`wgimask.nn.exact_diffusion.diffusion_inpaint`,
  forward solve and adjoint solve of an L1 loss) on a training batch with
  random masks at 5, 10 and 20 %, with either preconditioner, as a fraction
  of the joint step of the shipped size (its cost when it is added to a
  training step).

Every figure is printed with its ratio to the matmul peak.

FLOPs are counted analytically (`wgimask.nn.networks.forward_flops`: convolutions
and dense layers, 2 FLOP per multiply-add, for one image). Inference counts one
forward pass of the mask generator and one of the inpainting generator. A joint
training step counts 3x the forward FLOPs (forward, input gradient, kernel
gradient) for each network per pass it takes part in: once the mask generator,
once the inpainting generator, twice the critic (inpainted and original image),
per image of the batch. The work actually done is somewhat larger (the mask loss
backpropagates through the inpainting generator a second time, the generator
loss through the critic), so the ratios are conservative.

The matmul peak is the best of TensorFlow's and NumPy's float32 matmul of two
large square matrices, sampled several times during the run (the median of the
samples is reported): on a machine shared with other work, this keeps the peak
and the figures under comparable load. Every figure is the median of repeats.

    python -m benchmarks.speed.networks [--quick] [--output=FILE.json]

The script turns on TensorFlow's oneDNN kernels (``TF_ENABLE_ONEDNN_OPTS=1``,
TensorFlow's default only on CPUs with AVX-512) unless the variable is set.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import time

# Both must be set before TensorFlow is imported.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf
from absl import logging as absl_logging

from wgimask.devices import cpu_description
from wgimask.nn import exact_diffusion, fused_conv
from wgimask.nn.mask_layers import round_straight_through
from wgimask.nn.networks import (
    MODEL_SIZES,
    Critic,
    InpaintingGenerator,
    MaskGenerator,
    draw_seed,
    forward_flops,
)
from wgimask.serve import export
from wgimask.train import data
from wgimask.train.loop import Trainer, TrainingConfig

#: The model size of the shipped models, whose training step has a target.
SHIPPED_MODEL_SIZE = "small"
#: Crop size and batch of the training runs measured: those of the shipped
#: models (recipes/train_pretrained.sh).
TRAIN_IMAGE_SIZE = 64
TRAIN_BATCH = 16
MATMUL_SIZE = 4096


class Peak:
    """Samples of the float32 matmul peak, taken during the run."""

    def __init__(self, size: int = MATMUL_SIZE):
        self.size = size
        self.samples: list[float] = []
        self.by_library: dict[str, list[float]] = {"tensorflow": [], "numpy": []}
        a = tf.random.normal((size, size), seed=1)
        b = tf.random.normal((size, size), seed=2)
        self._tf = (tf.function(lambda x, y: tf.linalg.matmul(x, y)), a, b)
        self._np = (a.numpy(), b.numpy())
        self._tf[0](a, b).numpy()  # trace and warm up
        _ = self._np[0] @ self._np[1]

    def sample(self) -> float:
        """Times one matmul per library; records and returns the better."""
        flops = 2 * self.size**3
        f, a, b = self._tf
        start = time.perf_counter()
        f(a, b).numpy()
        tf_rate = flops / (time.perf_counter() - start) / 1e9
        a_np, b_np = self._np
        start = time.perf_counter()
        _ = a_np @ b_np
        np_rate = flops / (time.perf_counter() - start) / 1e9
        self.by_library["tensorflow"].append(tf_rate)
        self.by_library["numpy"].append(np_rate)
        self.samples.append(max(tf_rate, np_rate))
        return self.samples[-1]

    @property
    def gflops(self) -> float:
        return statistics.median(self.samples)


def _median_seconds(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _record(results, what, model_size, image_size, batch, seconds, flops=None):
    result = {
        "what": what,
        "model_size": model_size,
        "image_size": image_size,
        "batch": batch,
        "seconds": seconds,
        "images_per_second": batch / seconds,
        "flops_per_image": flops,
        "gflops": None if flops is None else flops * batch / seconds / 1e9,
    }
    results.append(result)
    return result


def measure_inference(model_size, image_size, batches, repeats, args, masks_only):
    """Inference at one size.

    Args:
        model_size: Model size.
        image_size: Side of the square images.
        batches: Batch sizes to time.
        repeats: Timed calls per batch size (the median is kept).
        args: Command-line arguments (``jit_compile``, ``quick``).
        masks_only: Time the mask generator alone (confidence and hard rounding)
            instead of the whole mask GAN (mask, then inpainting).

    Returns:
        (FLOPs per image, {batch: seconds per call}).
    """
    generator = InpaintingGenerator(image_size, 3, model_size)
    mask_generator = MaskGenerator(image_size, 3, model_size)
    confidence = mask_generator.confidence_model()
    flops = forward_flops(mask_generator)
    if not masks_only:
        flops += forward_flops(generator)
    spec = tf.TensorSpec([None, image_size, image_size, 3], tf.float32)

    @tf.function(input_signature=[spec], jit_compile=args.jit_compile or None)
    def infer(image):
        if masks_only:
            seed = draw_seed(tf.shape(image), seed=export.MASK_SEED)
            c = confidence({"image": image, "seed": seed}, training=False)
            return round_straight_through(c)
        # The serving path of the exported mask_gan SavedModel.
        return export.mask_gan(generator, confidence, image)["inpainted"]

    seconds = {}
    for batch in batches:
        image = tf.random.uniform((batch, image_size, image_size, 3), seed=batch)

        def run(image=image):
            infer(image).numpy()  # fetching the values waits for the result

        # Warm-up (tracing, kernel selection). --quick warms a large batch up
        # with two images: the same graph and kernels, at a fraction of the time.
        warm = 2 if args.quick and batch > 2 else batch
        infer(image[:warm]).numpy()
        seconds[batch] = _median_seconds(run, repeats)
    return flops, seconds


def training_flops(model_size: str, image_size: int) -> int:
    """Analytical FLOPs of one joint step per image (see the module doc)."""
    passes = {
        MaskGenerator(image_size, 3, model_size): 1,
        InpaintingGenerator(image_size, 3, model_size): 1,
        Critic(image_size, 3, model_size): 2,
    }
    return sum(3 * count * forward_flops(net) for net, count in passes.items())


def measure_training(model_size, image_size, batch, repeats, jit_compile, photos):
    """Seconds per joint step and per pipeline batch at one size."""
    with tempfile.TemporaryDirectory() as model_dir:
        config = TrainingConfig(
            model_size=model_size,
            image_size=image_size,
            batch_size=batch,
            model_dir=model_dir,
            jit_compile=jit_compile,
        )
        trainer = Trainer(config)
        dataset = trainer.add_noise(
            data.training_dataset(photos, image_size, batch, seed=0)
        )
        iterator = iter(dataset)

        def step():
            values = trainer.train_step(next(iterator))
            float(values["mae"])  # wait for the step

        step()  # tracing
        step()
        train_s = _median_seconds(step, repeats)

        # The pipeline alone, as training consumes it (crops + noise).
        pipeline = iter(
            trainer.add_noise(data.training_dataset(photos, image_size, batch, seed=1))
        )
        for _ in range(5):
            next(pipeline)
        count = 50
        start = time.perf_counter()
        for _ in range(count):
            next(pipeline)["image"].numpy()
        pipeline_s = (time.perf_counter() - start) / count
    return train_s, pipeline_s


#: Mask densities at which the exact diffusion operator is timed.
DIFFUSION_DENSITIES = (0.05, 0.1, 0.2)


def measure_exact_diffusion(
    image_size, batch, density, repeats, photos, preconditioner="jacobi"
):
    """Seconds of one forward + backward pass of the exact diffusion operator.

    The loss is the mean absolute error of the inpainting (as in Eq. 4), its
    gradient taken with respect to the mask and the image.

    Returns:
        (seconds, CG iterations of the forward solve).
    """
    image = next(iter(data.training_dataset(photos, image_size, batch, seed=0)))
    mask = data.random_masks(batch, image_size, image_size, density, [7, 8])

    @tf.function
    def forward_backward(image, mask):
        with tf.GradientTape() as tape:
            tape.watch([image, mask])
            inpainted = exact_diffusion.diffusion_inpaint(
                image, mask, preconditioner=preconditioner
            )
            loss = tf.reduce_mean(tf.abs(inpainted - image))
        return loss, tape.gradient(loss, [image, mask])

    def run():
        float(forward_backward(image, mask)[0])

    run()  # tracing and compilation
    solution = exact_diffusion.solve(image, mask, preconditioner=preconditioner)
    iterations = int(solution.iterations)
    return _median_seconds(run, max(repeats, 3)), iterations


def _line(result, peak):
    gflops = result["gflops"]
    ratio = "" if gflops is None else f"{gflops:8.1f} {gflops / peak:6.2f}"
    return (
        f"{result['what']:22s} {result['model_size'] or '-':>7s} "
        f"{result['image_size']:>4d}px {result['batch']:>5d} "
        f"{result['seconds'] * 1e3:>10.1f} {result['images_per_second']:>9.1f} "
        f"{ratio}"
    )


def _targets(results, shipped_size: str) -> list[dict]:
    """The figures with a target (issue 6), where this run measured them."""

    def find(what, model_size, image_size, batch):
        for r in results:
            if (r["what"], r["model_size"], r["image_size"], r["batch"]) == (
                what,
                model_size,
                image_size,
                batch,
            ):
                return r
        return None

    checks = []
    inference = find("mask_gan_inference", "paper", 128, 32)
    if inference:
        checks.append(
            (
                "paper-size mask-GAN inference, 128 px, batch 32, /peak",
                inference["ratio_to_peak"],
                0.85,
            )
        )
    training = find("joint_training_step", shipped_size, TRAIN_IMAGE_SIZE, TRAIN_BATCH)
    if training:
        checks.append(
            (
                f"{shipped_size} joint training step, /peak",
                training["ratio_to_peak"],
                0.5,
            )
        )
    pipeline = next(
        (
            r
            for r in results
            if r["what"] == "input_pipeline"
            and r.get("training_model_size") == shipped_size
        ),
        None,
    )
    if pipeline:
        checks.append(
            (
                f"input pipeline / {shipped_size} training step consumption",
                pipeline["ratio_to_training_step"],
                5,
            )
        )
    return [
        {"name": name, "value": value, "at_least": bound, "met": value >= bound}
        for name, value, bound in checks
    ]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="only the figures with targets (under two minutes): paper-size "
        "inference at 128 px, batch 32, and the shipped size's training step "
        "and input pipeline",
    )
    parser.add_argument("--output", help="write the figures to this JSON file")
    parser.add_argument(
        "--sizes", nargs="+", default=list(MODEL_SIZES), choices=list(MODEL_SIZES)
    )
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--shipped_size", default=SHIPPED_MODEL_SIZE)
    parser.add_argument("--jit_compile", action="store_true", help="compile with XLA")
    parser.add_argument(
        "--reference_ops",
        action="store_true",
        help="stock TensorFlow ops in the blocks (the plain path, for comparison)",
    )
    args = parser.parse_args(argv)
    absl_logging.set_verbosity(absl_logging.ERROR)
    plain_ops = contextlib.ExitStack()  # held until main returns
    if args.reference_ops or args.jit_compile:
        # XLA compiles the plain ops (as the Trainer does with jit_compile).
        plain_ops.enter_context(fused_conv.reference_ops())
    repeats = args.repeats or (1 if args.quick else 3)
    started = time.perf_counter()

    peak = Peak()
    for _ in range(2):
        peak.sample()
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    print(
        f"{cpu_description()}; TensorFlow {tf.__version__}, "
        f"TF_ENABLE_ONEDNN_OPTS={onednn}, XLA {'on' if args.jit_compile else 'off'}, "
        f"{'stock' if args.reference_ops or args.jit_compile else 'fused'} block ops; "
        f"median of {repeats} repeat(s)"
    )

    if args.quick:
        inference = [("paper", 128, [32], False)]
        if args.shipped_size != "paper":
            inference.append((args.shipped_size, 128, [32], False))
        training = [args.shipped_size]
    else:
        inference = [
            (size, px, [1, 32], masks_only)
            for size in args.sizes
            for px in (64, 128)
            for masks_only in (False, True)
        ]
        training = list(args.sizes)

    results = []
    for model_size, image_size, batches, masks_only in inference:
        flops, seconds = measure_inference(
            model_size, image_size, batches, repeats, args, masks_only
        )
        what = "mask_inference" if masks_only else "mask_gan_inference"
        for batch, s in seconds.items():
            _record(results, what, model_size, image_size, batch, s, flops)
        peak.sample()

    photos = data.embedded_photos(3)
    for model_size in training:
        train_s, pipeline_s = measure_training(
            model_size,
            TRAIN_IMAGE_SIZE,
            TRAIN_BATCH,
            max(repeats, 3),
            args.jit_compile,
            photos,
        )
        flops = training_flops(model_size, TRAIN_IMAGE_SIZE)
        step = _record(
            results,
            "joint_training_step",
            model_size,
            TRAIN_IMAGE_SIZE,
            TRAIN_BATCH,
            train_s,
            flops,
        )
        pipeline = _record(
            results,
            "input_pipeline",
            None,
            TRAIN_IMAGE_SIZE,
            TRAIN_BATCH,
            pipeline_s,
        )
        pipeline["training_model_size"] = model_size
        pipeline["ratio_to_training_step"] = (
            pipeline["images_per_second"] / step["images_per_second"]
        )
        peak.sample()

    step = next(
        (
            r
            for r in results
            if r["what"] == "joint_training_step"
            and r["model_size"] == args.shipped_size
        ),
        None,
    )
    for density, preconditioner in (
        (d, p) for p in exact_diffusion.PRECONDITIONERS for d in DIFFUSION_DENSITIES
    ):
        seconds, iterations = measure_exact_diffusion(
            TRAIN_IMAGE_SIZE, TRAIN_BATCH, density, repeats, photos, preconditioner
        )
        result = _record(
            results,
            f"diffusion_fb_{preconditioner[:2]}_{round(density * 100)}%",
            None,
            TRAIN_IMAGE_SIZE,
            TRAIN_BATCH,
            seconds,
        )
        result["cg_iterations"] = iterations
        if step:
            result["training_model_size"] = args.shipped_size
            result["ratio_to_training_step"] = seconds / step["seconds"]

    matmul = peak.gflops
    for result in results:
        gflops = result["gflops"]
        result["ratio_to_peak"] = None if gflops is None else gflops / matmul

    print(
        f"float32 matmul peak ({MATMUL_SIZE}x{MATMUL_SIZE}, median of "
        f"{len(peak.samples)} samples of the better library): {matmul:.1f} GFLOP/s "
        f"(TensorFlow {statistics.median(peak.by_library['tensorflow']):.1f}, "
        f"NumPy {statistics.median(peak.by_library['numpy']):.1f})"
    )
    print(
        f"{'what':22s} {'size':>7s} {'crop':>6s} {'batch':>5s} {'ms/batch':>10s} "
        f"{'images/s':>9s} {'GFLOP/s':>8s} {'/peak':>6s}"
    )
    for result in results:
        line = _line(result, matmul)
        if result["what"] == "input_pipeline":
            line += (
                f"   {result['ratio_to_training_step']:.0f}x the "
                f"{result['training_model_size']} training step"
            )
        elif result["what"].startswith("diffusion_fb") and (
            "ratio_to_training_step" in result
        ):
            line += (
                f"   {result['cg_iterations']} CG its, "
                f"{result['ratio_to_training_step']:.2f} of the "
                f"{result['training_model_size']} training step"
            )
        print(line)
    targets = _targets(results, args.shipped_size)
    for target in targets:
        print(
            f"target: {target['name']}: {target['value']:.2f} "
            f"(at least {target['at_least']}: "
            f"{'met' if target['met'] else 'NOT met'})"
        )
    print(f"total {time.perf_counter() - started:.0f} s")

    report = {
        "matmul_gflops": matmul,
        "matmul_gflops_samples": peak.samples,
        "matmul_gflops_by_library": {
            k: statistics.median(v) for k, v in peak.by_library.items()
        },
        "cpu_cores": os.cpu_count(),
        "device": cpu_description(),
        "tensorflow": tf.__version__,
        "onednn": onednn,
        "jit_compile": args.jit_compile,
        "block_ops": "stock" if args.reference_ops or args.jit_compile else "fused",
        "repeats": repeats,
        "flops": "analytical (wgimask.nn.networks.forward_flops, 2 per multiply-add)",
        "targets": targets,
        "runs": results,
    }
    if args.output:
        with open(args.output, "w") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    main()
