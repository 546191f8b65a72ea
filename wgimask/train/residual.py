"""Training a prefilled generator as what it is: a correction of diffusion.

A shipped model's generator g (``--prefill=diffusion``) adds a learned
residual to the homogeneous diffusion inpainting of the mask. Joint training
pays for m, d and about 17 diffusion solves per crop and step; here the
inputs are made once and cached, so a step is one forward and backward pass
of g's ``residual`` part (`wgimask.serve.parts`) and nothing else:

1. `build_cache`: for every photo (and native-resolution regions of large
   ones, the smooth content where g used to lose) and density, the
   whole-image densification mask and diffusion inpainting, as inference
   makes them, then random crops of the crop size of (image, mask,
   diffusion), stored in one ``.npz`` per density (image uint8, mask bool,
   diffusion float16).
2. `train_residual`: g from a run's export, fine-tuned on the cached crops
   with the mean squared error of diffusion + residual on the unknown pixels
   (the PSNR the model is judged by; no critic), Adam, checkpoints every
   ``checkpoint_every`` steps and resume from the latest, a line per
   ``log_every`` steps.
3. `export_residual`: the run's networks with the new g exported as a run
   (`wgimask.serve.export.export_models`): SavedModels, ``.keras`` files and
   LiteRT parts.

Large photos are densified and diffused whole, which costs seconds per photo
and density, once. ``recipes/train_residual.py`` runs the three steps.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time

import numpy as np

from wgimask import baselines
from wgimask.masks.densification import densification_mask

#: Seed input scale of the generators (`wgimask.nn.stateless_noise`).
from wgimask.nn.stateless_noise import SEED_STDDEV


@dataclasses.dataclass(frozen=True)
class ResidualSettings:
    """What `train_residual` needs.

    Attributes:
        density: The density the cache and the model are for.
        steps: Training steps in all (a resumed run continues to it).
        batch_size: Crops per step.
        learning_rate: Adam's step size.
        seed: Seed of the crop order and the seed inputs.
        checkpoint_every: Steps between checkpoints.
        log_every: Steps between progress lines.
    """

    density: float
    steps: int = 3000
    batch_size: int = 32
    learning_rate: float = 1e-4
    seed: int = 0
    checkpoint_every: int = 250
    log_every: int = 50

    def __post_init__(self):
        if not 0.0 < self.density < 1.0:
            raise ValueError(f"density must be in (0, 1), received {self.density}")
        for name in ("steps", "batch_size", "checkpoint_every", "log_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(
                    f"{name} must be at least 1, received {getattr(self, name)}"
                )
        if not self.learning_rate > 0:
            raise ValueError(
                f"learning_rate must be > 0, received {self.learning_rate}"
            )


def _crops(rng, image, mask, diffused, size: int, count: int):
    height, width = mask.shape
    if height < size or width < size:
        return []
    out = []
    for _ in range(count):
        y = int(rng.integers(0, height - size + 1))
        x = int(rng.integers(0, width - size + 1))
        window = (slice(y, y + size), slice(x, x + size))
        out.append((image[window], mask[window], diffused[window]))
    return out


def build_cache(
    images,
    density: float,
    path: str | pathlib.Path,
    *,
    crop_size: int = 64,
    crops_per_megapixel: float = 250.0,
    seed: int = 0,
    progress=print,
) -> pathlib.Path:
    """Makes the cached training inputs of one density.

    Args:
        images: Iterable of (name, (H, W, C) float32 image in [0, 1]).
        density: Mask density.
        path: The ``.npz`` file to write.
        crop_size: Side of the crops.
        crops_per_megapixel: How many crops per megapixel of an image (at
            least one per image).
        seed: Seed of the crop positions.
        progress: Called with one line per image.

    Returns:
        The written file.
    """
    rng = np.random.default_rng(seed)
    crops, names = [], []
    for name, image in images:
        started = time.perf_counter()
        mask = densification_mask(image, density)
        diffused = np.clip(baselines.inpaint(image, mask), 0.0, 1.0)
        count = max(1, int(round(crops_per_megapixel * mask.size / 1e6)))
        new = _crops(rng, image, mask, diffused, crop_size, count)
        crops += new
        names += [name] * len(new)
        progress(
            f"{name}: {image.shape[1]}x{image.shape[0]}, {len(new)} crops, "
            f"{time.perf_counter() - started:.1f} s"
        )
    if not crops:
        raise ValueError(f"no image is at least {crop_size}x{crop_size} pixels")
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp.npz")
    np.savez(
        temporary,
        image=np.stack([np.round(c[0] * 255).astype(np.uint8) for c in crops]),
        mask=np.stack([c[1] for c in crops]),
        diffused=np.stack([c[2].astype(np.float16) for c in crops]),
        names=np.array(names),
        density=np.float64(density),
    )
    temporary.replace(path)
    return path


def load_cache(path: str | pathlib.Path) -> dict[str, np.ndarray]:
    """The cached crops as float32 arrays: image, mask (N, H, W, 1), diffused."""
    with np.load(path) as data:
        return {
            "image": data["image"].astype(np.float32) / 255.0,
            "mask": data["mask"][..., None].astype(np.float32),
            "diffused": data["diffused"].astype(np.float32),
            "density": float(data["density"]),
        }


def residual_loss(images, masks, diffused, residual):
    """Mean squared error of diffusion + residual on the unknown pixels.

    The model is judged by the PSNR of its inpainting, whose known pixels are
    the image's own (`wgimask.inference.Model.inpaint`), so only the unknown
    ones count. (Not the paper's Eq. 3: its adversarial term is left out,
    alpha = 0 as in the shipped models.)
    """
    import tensorflow as tf

    unknown = 1.0 - masks
    error = tf.square(diffused + residual - images) * unknown
    return tf.reduce_sum(error) / tf.maximum(
        tf.reduce_sum(unknown) * tf.cast(tf.shape(images)[-1], tf.float32), 1.0
    )


def train_residual(
    run: str | pathlib.Path,
    cache: dict[str, np.ndarray],
    settings: ResidualSettings,
    work_dir: str | pathlib.Path,
    progress=print,
):
    """Fine-tunes a prefilled run's g on cached crops; resumable.

    Args:
        run: A run folder (or export) whose generator is prefilled.
        cache: `load_cache`'s arrays.
        settings: The training settings.
        work_dir: Where checkpoints and ``history.jsonl`` go; a later call
            resumes from its latest checkpoint.
        progress: Called with one line per ``log_every`` steps.

    Returns:
        ``(generator, mask_generator, config)``: the run's networks, g
        trained.
    """
    import keras
    import tensorflow as tf

    from wgimask.serve.model_files import export_dir
    from wgimask.serve.parts import keras_parts, load_networks

    exported = export_dir(run)
    config = json.loads((exported.parent / "config.json").read_text())
    if config.get("prefill") != "diffusion":
        raise ValueError(f"{run}: its generator is not prefilled (--prefill=diffusion)")
    generator, mask_generator = load_networks(exported, config)
    part = keras_parts(generator)["residual"]
    optimizer = keras.optimizers.Adam(settings.learning_rate)
    optimizer.build(part.trainable_variables)
    step = tf.Variable(0, dtype=tf.int64, name="step")
    work_dir = pathlib.Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = tf.train.Checkpoint(
        generator=generator, optimizer=optimizer, step=step
    )
    manager = tf.train.CheckpointManager(checkpoint, work_dir / "checkpoints", 3)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        progress(f"resumed at step {int(step.numpy())}")

    @tf.function(reduce_retracing=True)
    def train_step(images, masks, diffused, seeds):
        with tf.GradientTape() as tape:
            residual = part([images * masks, masks, seeds, diffused], training=True)
            loss = residual_loss(images, masks, diffused, residual)
        grads = tape.gradient(loss, part.trainable_variables)
        optimizer.apply(grads, part.trainable_variables)
        return loss

    count = len(cache["image"])
    mean = keras.metrics.Mean()
    started = time.perf_counter()
    history = work_dir / "history.jsonl"
    while int(step.numpy()) < settings.steps:
        index = int(step.numpy())
        # The batch of a step depends on the seed and the step only, so a
        # resumed run sees what an uninterrupted one would.
        rng = np.random.default_rng([settings.seed, index])
        pick = rng.integers(0, count, settings.batch_size)
        masks = cache["mask"][pick]
        seeds = (
            rng.standard_normal(masks.shape[:3] + (cache["image"].shape[-1],))
            * SEED_STDDEV
        ).astype(np.float32) * (1.0 - masks)
        loss = train_step(cache["image"][pick], masks, cache["diffused"][pick], seeds)
        mean.update_state(loss)
        step.assign_add(1)
        done = index + 1
        if done % settings.log_every == 0 or done == settings.steps:
            line = {
                "step": done,
                "loss": float(mean.result()),
                "seconds": round(time.perf_counter() - started, 1),
            }
            with history.open("a") as out:
                out.write(json.dumps(line) + "\n")
            progress(f"step {done}/{settings.steps}: loss {line['loss']:.3g}")
            mean.reset_state()
        if done % settings.checkpoint_every == 0 or done == settings.steps:
            manager.save(checkpoint_number=done)
    return generator, mask_generator, config


def export_residual(generator, mask_generator, config: dict, run_dir) -> pathlib.Path:
    """Exports the networks as the run ``run_dir`` (its config.json written)."""
    from wgimask.pipeline import MaskPipeline
    from wgimask.serve.export import export_models

    run_dir = pathlib.Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return export_models(
        run_dir, generator, mask_generator, pipeline=MaskPipeline.from_config(config)
    )
