"""Joint training of the mask GAN (Sec. 3.2) and of the inpainting WGAN alone.

`train(config)` runs the whole job: data, networks, the distributed step,
progress, TensorBoard summaries, checkpoints with resumption, best-weight
tracking and the final export. `Trainer` exposes the pieces for tests and
notebooks.

Every step, from one forward pass, updates the critic with Eq. 2, the inpainting
generator with Eq. 3 and (in ``joint`` mode) the mask generator with Eq. 4, with
c = b = m(r, f). In ``inpaint`` mode the masks are uniformly random with exactly
round(D N) known pixels (the paper's Table 2(a) baseline).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import pathlib
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from wgimask import blocks, data, losses, metrics
from wgimask.blocks import BINARISATION_OPERATORS
from wgimask.export import export_models
from wgimask.networks import (
    DOWNSAMPLING,
    MODEL_SIZES,
    Critic,
    InpaintingGenerator,
    MaskGenerator,
    draw_seed,
)

MODES = ("joint", "inpaint")
LR_SCHEDULES = ("constant", "cosine")
VALIDATION_CROPS = ("auto", "center", "tiles")
#: Keras dtype policies of the networks (`TrainingConfig.precision`).
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
# Number of validation images written to TensorBoard at each epoch end.
SUMMARY_IMAGES = 4

#: The paper's settings (Sec. 4.1), for users with a GPU and a real data set.
PRESETS = {
    "paper": dict(
        model_size="paper",
        image_size=64,
        batch_size=128,
        learning_rate=5e-5,
        lr_schedule="constant",
        alpha=losses.DEFAULT_ALPHA,
        beta=losses.DEFAULT_BETA,
        epochs=1000,
    ),
}
PRESETS["paper128"] = {**PRESETS["paper"], "image_size": 128, "batch_size": 32}


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Everything a training run needs; `validate` checks it.

    The defaults are a small job that finishes on a 2-core CPU in minutes; see
    `PRESETS` for the paper's settings.

    Attributes:
        density: Target mask density D in (0, 1).
        mode: "joint" (mask GAN) or "inpaint" (inpainting WGAN, random masks).
        data_dir: Image folder, or None for the photos embedded in scikit-image.
        validation_dir: Folder of validation images. If given, every image of
            the training source trains and `validation_fraction` is not used.
        image_size: Side of the square training crops, a multiple of 8.
        channels: 3 (colour) or 1 (grey).
        batch_size: Global batch size (split over devices).
        epochs: Number of epochs.
        steps_per_epoch: Steps per epoch (crops are drawn at random, so an epoch
            is a number of steps, not a pass over the data).
        learning_rate: Adam learning rate of all three networks.
        lr_schedule: "constant" (the paper) or "cosine" (decay to 0 at the end,
            which settles the mask density on short CPU runs).
        alpha: Weight of the adversarial term in Eq. 3.
        beta: Weight of the inpainting error in Eq. 4.
        binarisation: Mask binarisation operator (Table 1).
        model_size: Width of the networks, a key of `MODEL_SIZES`.
        model_dir: Where checkpoints, summaries and exports go.
        seed: Seed of initialisation, data split, crops and noise.
        validation_fraction: Fraction of the images kept for validation.
        validation_crops: "center" (one centre crop per image, as in the paper),
            "tiles" (a grid of crops per image), or "auto": tiles for the few
            large embedded photos (one centre crop each would make a noisy
            validation set of one or two crops), centre crops for a folder.
        checkpoint_every: Steps between checkpoints (also saved at epoch ends).
        jit_compile: Compile the training step with XLA. On CPUs it is slower
            than TensorFlow's own (oneDNN) kernels; it may help on GPUs.
        precision: Keras dtype policy of the networks: "float32", or the mixed
            policies for GPUs, "mixed_float16" (float16 compute with float32
            weights and dynamic loss scaling) and "mixed_bfloat16". Eq. 1, the
            mask and the critic's score are float32 in every policy, and so are
            the losses.
    """

    density: float = 0.05
    mode: str = "joint"
    data_dir: str | None = None
    validation_dir: str | None = None
    image_size: int = 32
    channels: int = 3
    batch_size: int = 16
    epochs: int = 5
    steps_per_epoch: int = 100
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"
    alpha: float = losses.DEFAULT_ALPHA
    beta: float = losses.DEFAULT_BETA
    binarisation: str = "hard_rounding"
    model_size: str = "tiny"
    model_dir: str = "runs/default"
    seed: int = 0
    validation_fraction: float = 0.2
    validation_crops: str = "auto"
    checkpoint_every: int = 50
    jit_compile: bool = False
    precision: str = "float32"

    def validate(self) -> TrainingConfig:
        """Checks every field.

        Returns:
            The config itself.

        Raises:
            ValueError: Naming the first invalid field and its value.
        """

        def fail(name, requirement):
            raise ValueError(
                f"{name} must be {requirement}, received {getattr(self, name)!r}"
            )

        if not 0.0 < self.density < 1.0:
            fail("density", "in (0, 1)")
        if self.mode not in MODES:
            fail("mode", f"one of {MODES}")
        if self.image_size < DOWNSAMPLING or self.image_size % DOWNSAMPLING:
            fail("image_size", f"a positive multiple of {DOWNSAMPLING}")
        if self.channels not in (1, 3):
            fail("channels", "1 or 3")
        for name in ("batch_size", "epochs", "steps_per_epoch", "checkpoint_every"):
            if getattr(self, name) < 1:
                fail(name, "a positive integer")
        if not self.learning_rate > 0:
            fail("learning_rate", "positive")
        if self.lr_schedule not in LR_SCHEDULES:
            fail("lr_schedule", f"one of {LR_SCHEDULES}")
        if self.alpha < 0:
            fail("alpha", "non-negative")
        if self.beta < 0:
            fail("beta", "non-negative")
        if self.binarisation not in BINARISATION_OPERATORS:
            fail("binarisation", f"one of {BINARISATION_OPERATORS}")
        if self.model_size not in MODEL_SIZES:
            fail("model_size", f"one of {sorted(MODEL_SIZES)}")
        if not 0.0 <= self.validation_fraction < 1.0:
            fail("validation_fraction", "in [0, 1)")
        if self.validation_crops not in VALIDATION_CROPS:
            fail("validation_crops", f"one of {VALIDATION_CROPS}")
        if self.seed < 0:
            fail("seed", "non-negative")
        if self.precision not in PRECISIONS:
            fail("precision", f"one of {PRECISIONS}")
        return self

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch


@contextlib.contextmanager
def _dtype_policy(policy: str):
    """Builds the layers created inside with the Keras dtype policy `policy`."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def default_strategy() -> tf.distribute.Strategy:
    """The strategy for this machine.

    `MultiWorkerMirroredStrategy` when ``TF_CONFIG`` names several workers,
    `MirroredStrategy` over all visible GPUs when there are any, else the
    default (single-device) strategy.

    Returns:
        A `tf.distribute.Strategy`.
    """
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    if len(tf_config.get("cluster", {}).get("worker", [])) > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if tf.config.list_logical_devices("GPU"):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


class Trainer:
    """Networks, optimizers, the distributed step, validation and checkpoints.

    Args:
        config: A validated `TrainingConfig`.
        strategy: Distribution strategy; `default_strategy()` if None.
    """

    def __init__(self, config: TrainingConfig, strategy=None):
        self.config = config.validate()
        self.strategy = strategy or default_strategy()
        self.model_dir = pathlib.Path(config.model_dir)
        keras.utils.set_random_seed(config.seed)
        size = config.image_size
        with self.strategy.scope(), _dtype_policy(config.precision):
            self.generator = InpaintingGenerator(
                None, config.channels, config.model_size
            )
            self.critic = Critic(size, config.channels, config.model_size)
            self.mask_generator = (
                MaskGenerator(
                    None, config.channels, config.model_size, config.binarisation
                )
                if config.mode == "joint"
                else None
            )
            self.optimizers = {
                name: self._optimizer(f"adam_{name}") for name in self.networks
            }
            # Keras 3 optimizers must create their slots inside the scope,
            # before the first distributed step.
            for name, network in self.networks.items():
                self.optimizers[name].build(network.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.trackers = {
            name: keras.metrics.Mean(name=name)
            for name in ("critic_loss", "generator_loss", "mask_loss", "density", "mae")
        }
        self.checkpoint = tf.train.Checkpoint(
            step=self.step,
            **self.networks,
            **{f"optimizer_{k}": v for k, v in self.optimizers.items()},
        )
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self.model_dir / "checkpoints", max_to_keep=3
        )
        # The best weights by validation Eq. 4, kept apart from the latest.
        self.best_manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(**self.networks), self.model_dir / "best", max_to_keep=1
        )
        self._distributed_step = None

    @property
    def networks(self) -> dict[str, keras.Model]:
        nets = {"generator": self.generator, "critic": self.critic}
        if self.mask_generator is not None:
            nets["mask_generator"] = self.mask_generator
        return nets

    def _optimizer(self, name: str) -> keras.optimizers.Optimizer:
        optimizer = keras.optimizers.Adam(self._learning_rate(), name=name)
        if self.config.precision == "mixed_float16":
            # float16 gradients underflow without loss scaling.
            return keras.optimizers.LossScaleOptimizer(optimizer, name=f"{name}_scaled")
        return optimizer

    def _learning_rate(self):
        if self.config.lr_schedule == "cosine":
            return keras.optimizers.schedules.CosineDecay(
                self.config.learning_rate, self.config.total_steps
            )
        return self.config.learning_rate

    # --- Data -----------------------------------------------------------------

    def add_noise(self, dataset: tf.data.Dataset, start_step: int = 0):
        """Attaches the random inputs of each batch, drawn per global batch.

        Drawing the seeds (and the random masks of ``inpaint`` mode) in the
        input pipeline, keyed on (seed, step), makes every example's noise
        independent of how the batch is split over devices.

        Args:
            dataset: Batches of images (global batch size).
            start_step: Index of the first batch.

        Returns:
            A dataset of dicts with ``image``, ``mask_seed``, ``generator_seed``
            and (``inpaint`` mode) ``mask``.
        """
        config = self.config
        base = tf.constant(config.seed, tf.int64)

        def attach(step, images):
            keys = tf.random.experimental.stateless_split(tf.stack([base, step]), 3)
            shape = tf.shape(images)
            batch = {
                "image": images,
                "mask_seed": draw_seed(shape, seed=keys[0]),
                "generator_seed": draw_seed(shape, seed=keys[1]),
            }
            if config.mode == "inpaint":
                batch["mask"] = data.random_masks(
                    shape[0], shape[1], shape[2], config.density, keys[2]
                )
            return batch

        return dataset.enumerate(start=start_step).map(
            attach, num_parallel_calls=tf.data.AUTOTUNE
        )

    # --- The step ---------------------------------------------------------------

    def _forward(self, batch, training: bool):
        image = batch["image"]
        if self.mask_generator is not None:
            mask = self.mask_generator(
                {"image": image, "seed": batch["mask_seed"]}, training=training
            )
        else:
            mask = batch["mask"]
        inpainted = self.generator(
            {
                "known": image * mask,
                "mask": mask,
                "seed": batch["generator_seed"] * (1.0 - mask),
            },
            training=training,
        )
        return mask, inpainted

    def _replica_step(self, batch):
        config = self.config
        global_batch = config.batch_size
        image = batch["image"]
        tapes = {name: tf.GradientTape() for name in self.networks}
        for tape in tapes.values():
            tape.__enter__()
        try:
            mask, inpainted = self._forward(batch, training=True)
            score_fake = self.critic({"image": inpainted, "mask": mask}, training=True)
            score_real = self.critic({"image": image, "mask": mask}, training=True)
            per_example = {
                "critic": losses.critic_loss(score_fake, score_real),
                "generator": losses.generator_loss(
                    score_fake, image, inpainted, config.alpha
                ),
                "mask_generator": losses.mask_loss(
                    mask, image, inpainted, config.density, config.beta
                ),
            }
            loss = {
                name: tf.nn.compute_average_loss(value, global_batch_size=global_batch)
                for name, value in per_example.items()
            }
            # The identity except under mixed_float16 (loss scaling).
            scaled = {
                name: self.optimizers[name].scale_loss(loss[name])
                for name in self.networks
            }
        finally:
            for tape in tapes.values():
                tape.__exit__(None, None, None)
        # All gradients come from the same forward pass, then all are applied.
        grads = {
            name: tapes[name].gradient(scaled[name], net.trainable_variables)
            for name, net in self.networks.items()
        }
        for name, net in self.networks.items():
            self.optimizers[name].apply(grads[name], net.trainable_variables)

        def average(x):
            return tf.nn.compute_average_loss(x, global_batch_size=global_batch)

        return {
            "critic_loss": loss["critic"],
            "generator_loss": loss["generator"],
            "mask_loss": loss["mask_generator"],
            "density": average(losses.mask_density(mask)),
            "mae": average(losses.mean_absolute_error(image, inpainted)),
        }

    def train_step(self, distributed_batch) -> dict[str, tf.Tensor]:
        """One synchronous step on a batch of the distributed dataset.

        Args:
            distributed_batch: One element of the distributed dataset.

        Returns:
            The step's losses, density and MAE, averaged over the global batch.
        """
        if self._distributed_step is None:

            def step(batch):
                per_replica = self.strategy.run(self._replica_step, args=(batch,))
                # Each replica's value is already divided by the global batch.
                values = {
                    k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                    for k, v in per_replica.items()
                }
                # The running means too: no eager op per step.
                for name, value in values.items():
                    self.trackers[name].update_state(value)
                self.step.assign_add(1)
                return values

            self._distributed_step = tf.function(
                step, jit_compile=self.config.jit_compile or None
            )
        # XLA compiles the plain ops (it fuses them itself); the fused blocks
        # target TensorFlow's own kernels and do not compile with XLA.
        with (
            blocks.reference_ops()
            if self.config.jit_compile
            else contextlib.nullcontext()
        ):
            return self._distributed_step(distributed_batch)

    # --- Validation -------------------------------------------------------------

    def validation_batch(self, crops: np.ndarray) -> dict[str, tf.Tensor]:
        """Fixed inputs for validating on `crops` (same noise every time)."""
        images = tf.constant(crops)
        keys = tf.random.experimental.stateless_split(
            tf.constant([self.config.seed, -1], tf.int64), 3
        )
        shape = tf.shape(images)
        return {
            "image": images,
            "mask_seed": draw_seed(shape, seed=keys[0]),
            "generator_seed": draw_seed(shape, seed=keys[1]),
            "mask": data.random_masks(
                shape[0], shape[1], shape[2], self.config.density, keys[2]
            ),
        }

    def validate(self, batch: dict[str, tf.Tensor]) -> dict[str, float]:
        """Validation PSNR, Eq. 4 and density of the networks in inference mode.

        Args:
            batch: From `validation_batch`.

        Returns:
            ``psnr`` (dB, mean over images), ``mask_loss`` (Eq. 4, mean),
            ``density`` and ``mae`` (0-1 scale) as floats, and the ``mask`` and
            ``inpainted`` tensors.
        """
        mask, inpainted = self._forward(batch, training=False)
        image = batch["image"]
        eq4 = losses.mask_loss(
            mask, image, inpainted, self.config.density, self.config.beta
        )
        f, u = image.numpy(), inpainted.numpy()
        return {
            "psnr": float(
                np.mean([metrics.psnr(a, b) for a, b in zip(f, u, strict=True)])
            ),
            "mask_loss": float(tf.reduce_mean(eq4)),
            "density": float(tf.reduce_mean(losses.mask_density(mask))),
            "mae": float(tf.reduce_mean(losses.mean_absolute_error(image, inpainted))),
            "mask": mask,
            "inpainted": inpainted,
        }

    # --- Checkpoints --------------------------------------------------------------

    def restore(self) -> bool:
        """Restores the latest checkpoint of `model_dir`, if any.

        Returns:
            True if a checkpoint was restored.
        """
        latest = self.manager.latest_checkpoint
        if latest is None:
            return False
        self.checkpoint.restore(latest).assert_existing_objects_matched()
        return True

    def restore_best(self) -> bool:
        """Loads the best weights by validation Eq. 4 into the networks, if kept.

        Returns:
            True if best weights were found and loaded.
        """
        best = self.best_manager.latest_checkpoint
        if best is None:
            return False
        self.best_manager.checkpoint.restore(best).assert_existing_objects_matched()
        return True

    def best_value(self) -> float:
        """Validation Eq. 4 of the kept best weights (inf if none)."""
        path = self.model_dir / "best" / "best.json"
        return json.loads(path.read_text())["mask_loss"] if path.exists() else math.inf

    def save_best(self, value: float) -> None:
        """Keeps the current weights as the best, with their validation Eq. 4."""
        self.best_manager.save(checkpoint_number=int(self.step))
        tmp = self.model_dir / "best" / "best.json.tmp"
        tmp.write_text(json.dumps({"mask_loss": value, "step": int(self.step)}))
        tmp.replace(tmp.with_suffix(""))


def validation_crop_mode(config: TrainingConfig) -> str:
    """The `data.validation_crops` mode that "auto" stands for."""
    if config.validation_crops != "auto":
        return config.validation_crops
    return "tiles" if config.data_dir is None else "center"


def prepare_images(config: TrainingConfig):
    """Loads and splits the images; fails before any model is built.

    Args:
        config: The run's config.

    Returns:
        (training images, validation images, training names).

    Raises:
        FileNotFoundError, NotADirectoryError, ValueError: for a missing, wrong
            or empty data folder (prefixed "validation_dir: " for that one).
    """
    images, names = data.source_images(config.data_dir, config.channels)
    if config.validation_dir is not None:
        try:
            validation, _ = data.source_images(config.validation_dir, config.channels)
        except (FileNotFoundError, NotADirectoryError, ValueError) as error:
            # Name the field: the same exceptions come from data_dir above.
            raise type(error)(f"validation_dir: {error}") from error
        return images, validation, names
    groups = data.EMBEDDED_PHOTO_GROUPS if config.data_dir is None else None
    train_idx, val_idx = data.split_indices(
        len(images), config.validation_fraction, config.seed, groups=groups
    )
    return (
        [images[i] for i in train_idx],
        [images[i] for i in val_idx],
        [names[i] for i in train_idx],
    )


def train(
    config: TrainingConfig,
    strategy=None,
    *,
    images: tuple | None = None,
    export: bool = True,
) -> Trainer:
    """Runs (or resumes) a training job and exports the result.

    Args:
        config: The run's config.
        strategy: Distribution strategy; `default_strategy()` if None.
        images: The result of `prepare_images(config)`, if already loaded.
        export: Export the best (else the latest) weights at the end.

    Returns:
        The `Trainer`; after an export its networks hold the exported weights.

    Raises:
        ValueError: For an invalid config or unusable data.
    """
    config.validate()
    train_images, val_images, train_names = images or prepare_images(config)
    trainer = Trainer(config, strategy)
    model_dir = trainer.model_dir
    model_dir.mkdir(parents=True, exist_ok=True)
    resumed = trainer.restore()
    start = int(trainer.step)
    logging.info(
        "%s %s training at step %d of %d in %s (%d training, %d validation images)",
        "Resuming" if resumed else "Starting",
        config.mode,
        start,
        config.total_steps,
        model_dir,
        len(train_images),
        len(val_images),
    )
    (model_dir / "config.json").write_text(
        json.dumps(dataclasses.asdict(config), indent=2)
    )
    dataset = data.training_dataset(
        train_images,
        config.image_size,
        config.batch_size,
        seed=config.seed,
        start_step=start,
        names=train_names,
    )
    dataset = trainer.add_noise(dataset, start_step=start)
    iterator = iter(trainer.strategy.experimental_distribute_dataset(dataset))
    validation = (
        trainer.validation_batch(
            data.validation_crops(
                val_images, config.image_size, crops=validation_crop_mode(config)
            )
        )
        if val_images
        else None
    )
    writer = tf.summary.create_file_writer(str(model_dir / "logs"))
    best = trainer.best_value()

    step = start
    while step < config.total_steps:
        epoch = step // config.steps_per_epoch
        end = min((epoch + 1) * config.steps_per_epoch, config.total_steps)
        print(f"Epoch {epoch + 1}/{config.epochs}")
        bar = keras.utils.Progbar(
            config.steps_per_epoch, stateful_metrics=list(trainer.trackers)
        )
        for tracker in trainer.trackers.values():
            tracker.reset_state()
        started = time.perf_counter()
        while step < end:
            values = trainer.train_step(next(iterator))
            step += 1
            if step % config.checkpoint_every == 0:
                trainer.manager.save(checkpoint_number=step)
            bar.update(
                step - epoch * config.steps_per_epoch,
                [(k, float(t.result())) for k, t in trainer.trackers.items()],
            )
            if step % 10 == 0 or step == end:
                with writer.as_default(step=step):
                    for name, value in values.items():
                        tf.summary.scalar(f"train/{name}", value)
        seconds = time.perf_counter() - started
        trainer.manager.save(checkpoint_number=step)
        with writer.as_default(step=step):
            tf.summary.scalar("train/seconds_per_epoch", seconds)
            if validation is not None:
                result = trainer.validate(validation)
                for name in ("psnr", "mask_loss", "density", "mae"):
                    tf.summary.scalar(f"validation/{name}", result[name])
                shown = slice(0, SUMMARY_IMAGES)
                tf.summary.image("validation/original", validation["image"][shown])
                tf.summary.image("validation/mask", result["mask"][shown])
                tf.summary.image(
                    "validation/known", (validation["image"] * result["mask"])[shown]
                )
                tf.summary.image("validation/inpainted", result["inpainted"][shown])
                print(
                    f"validation: psnr {result['psnr']:.2f} dB, "
                    f"Eq. 4 {result['mask_loss']:.4f}, density {result['density']:.4f}"
                )
                if result["mask_loss"] < best:
                    best = result["mask_loss"]
                    trainer.save_best(best)
        writer.flush()

    if export:
        # Export the best weights when validation chose some (as in the paper).
        trainer.restore_best()
        export_models(
            model_dir, trainer.generator, trainer.mask_generator, trainer.critic
        )
    return trainer


def export_run(model_dir: str | os.PathLike) -> pathlib.Path:
    """Exports an existing training run: its best weights, else its latest.

    Args:
        model_dir: A folder written by `train`.

    Returns:
        The export directory.

    Raises:
        FileNotFoundError: If the folder holds no run or no checkpoint.
    """
    model_dir = pathlib.Path(model_dir)
    config_path = model_dir / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(f"{model_dir} holds no training run (no config.json)")
    config = TrainingConfig(**json.loads(config_path.read_text()))
    trainer = Trainer(config)
    if not trainer.restore():
        raise FileNotFoundError(f"{model_dir} holds no checkpoint to export")
    trainer.restore_best()
    return export_models(
        model_dir, trainer.generator, trainer.mask_generator, trainer.critic
    )
