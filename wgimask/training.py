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
import shutil
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from wgimask import blocks, data, losses, metrics, run_folder
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
# Prefix of the step's gradient-norm values (checked, not summarised).
GRAD_NORM = "grad_norm/"
# Which equation each checked value belongs to, for the stop message.
_CHECKED = {
    "critic_loss": "critic loss (Eq. 2)",
    "generator_loss": "generator loss (Eq. 3)",
    "mask_loss": "mask loss (Eq. 4)",
}

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

        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, float) and not math.isfinite(value):
                fail(field.name, "a finite number")
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


class NonFiniteError(FloatingPointError):
    """Training stopped because a loss or gradient norm became NaN or inf."""


def cluster_role(strategy: tf.distribute.Strategy) -> tuple[int, bool, str]:
    """Number of workers, whether this process is the chief, and its name.

    The chief is the task of type "chief" if the cluster names one, else
    worker 0; a single process is its own chief.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
    workers = sum(len(spec.get(kind, [])) for kind in ("chief", "worker")) or 1
    if resolver is None or workers == 1:
        return 1, True, "chief"
    task_type, task_id = resolver.task_type, resolver.task_id
    chief = task_type == "chief" or (
        task_type == "worker" and task_id == 0 and "chief" not in spec
    )
    return workers, chief, f"{task_type} {task_id}"


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
        self.workers, self.is_chief, self.task = cluster_role(self.strategy)
        replicas = self.strategy.num_replicas_in_sync
        if config.batch_size % replicas:
            raise ValueError(
                f"batch_size must be a multiple of the {replicas} replicas in "
                f"sync, received {config.batch_size}"
            )
        # Only the chief writes into the run folder. The other workers save
        # their checkpoints too (every worker must take part in a distributed
        # save) but into a temporary folder of their own, removed by `close`.
        self.write_dir = (
            self.model_dir
            if self.is_chief
            else pathlib.Path(tempfile.mkdtemp(prefix="wgimask-worker-"))
        )
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
            self.checkpoint, self.write_dir / "checkpoints", max_to_keep=3
        )
        # The best weights by validation Eq. 4, kept apart from the latest.
        self.best_manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(**self.networks), self.write_dir / "best", max_to_keep=1
        )
        self._distributed_step = None

    def close(self) -> None:
        """Removes a non-chief worker's temporary folder."""
        if not self.is_chief:
            shutil.rmtree(self.write_dir, ignore_errors=True)

    @property
    def distributed(self) -> bool:
        """Whether the variables are distributed (several replicas or workers)."""
        return self.strategy.num_replicas_in_sync > 1 or self.workers > 1

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

        # Summed over replicas: finite exactly when every replica's norm is.
        # Not under loss scaling, where non-finite gradients are expected and
        # the optimizer skips those steps itself.
        norms = (
            {}
            if config.precision == "mixed_float16"
            else {
                f"{GRAD_NORM}{name}": tf.linalg.global_norm(grads[name])
                for name in self.networks
            }
        )
        return norms | {
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
            The step's losses, density and MAE, averaged over the global batch,
            and (except under mixed_float16) ``grad_norm/NETWORK``, the
            gradients' global norms summed over replicas, for finiteness checks.
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
                for name, tracker in self.trackers.items():
                    tracker.update_state(values[name])
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
        # The shared folder: a non-chief worker resumes from the chief's saves.
        latest = tf.train.latest_checkpoint(str(self.model_dir / "checkpoints"))
        if latest is None:
            return False
        self.checkpoint.restore(latest).assert_existing_objects_matched()
        return True

    def restore_best(self) -> bool:
        """Loads the best weights by validation Eq. 4 into the networks, if kept.

        Returns:
            True if best weights were found and loaded.
        """
        best = tf.train.latest_checkpoint(str(self.model_dir / "best"))
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
        step = int(self.step.numpy())
        self.best_manager.save(checkpoint_number=step)
        _write_json(
            self.model_dir / "best" / "best.json", {"mask_loss": value, "step": step}
        )

    def validated_step(self) -> int:
        """The last step whose validation finished (0 if none)."""
        path = self.model_dir / VALIDATED
        return json.loads(path.read_text())["step"] if path.exists() else 0

    def export_networks(self) -> dict[str, keras.Model | None]:
        """The networks to export: plain copies when the variables are distributed.

        A SavedModel of distributed variables would need the strategy to load;
        copies built outside the strategy's scope export like a one-device run.
        """
        nets = {
            "generator": self.generator,
            "mask_generator": self.mask_generator,
            "critic": self.critic,
        }
        if not self.distributed:
            return nets
        config = self.config
        with _dtype_policy(config.precision):
            copies = {
                "generator": InpaintingGenerator(
                    None, config.channels, config.model_size
                ),
                "critic": Critic(config.image_size, config.channels, config.model_size),
                "mask_generator": MaskGenerator(
                    None, config.channels, config.model_size, config.binarisation
                )
                if config.mode == "joint"
                else None,
            }
        for name, copy in copies.items():
            if copy is not None:
                copy.set_weights(nets[name].get_weights())
        return copies


# Records the last step whose validation finished, so that a run killed between
# an epoch's checkpoint and its validation redoes that validation on resume.
VALIDATED = "validated.json"


def _write_json(path: pathlib.Path, value: dict) -> None:
    """Writes `value` as JSON atomically (a temporary file renamed into place)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2))
    tmp.replace(path)


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


def _open_run(trainer: Trainer, overwrite: bool, stack: contextlib.ExitStack):
    """Checks, locks and tidies the run folder (the chief); see `run_folder`."""
    config, model_dir = trainer.config, trainer.model_dir
    if overwrite and trainer.workers > 1:
        raise run_folder.RunFolderError(
            "--overwrite cannot be used with several workers; empty "
            f"{model_dir} first, or use another --model_dir"
        )
    if not trainer.is_chief:
        # Read-only: the same refusal as the chief's, so that no worker waits
        # for a chief that stopped.
        if not overwrite:
            run_folder.check_resumable(model_dir, dataclasses.asdict(config))
        return
    run_folder.prepare(model_dir)
    stack.enter_context(run_folder.RunLock(model_dir, "training"))
    if overwrite:
        run_folder.start_over(model_dir)
    else:
        run_folder.check_resumable(model_dir, dataclasses.asdict(config))
    run_folder.remove_leftovers(model_dir)


def _check_finite(values: dict, step: int, trainer: Trainer) -> None:
    """Stops training when a loss or a gradient norm is NaN or inf.

    Called after every step and before anything of that step is saved, so the
    run folder keeps the last good checkpoint.
    """
    for name, value in values.items():
        value = float(value)
        if math.isfinite(value):
            continue
        if name.startswith(GRAD_NORM):
            what = f"gradient norm of the {name[len(GRAD_NORM) :]}"
        else:
            what = _CHECKED.get(name, name)
        last = tf.train.latest_checkpoint(str(trainer.model_dir / "checkpoints"))
        kept = (
            f"the last good checkpoint is step {last.rsplit('-', 1)[1]}"
            if last
            else "no checkpoint was written"
        )
        raise NonFiniteError(
            f"training stopped at step {step}: the {what} is {value}; {kept} "
            "(lower --learning_rate, or check the data and --alpha/--beta)"
        )


def _validate_epoch(trainer, validation, writer, step: int, best: float) -> float:
    """Validation, summaries and best-weight choice at an epoch end (the chief).

    Returns:
        The best validation Eq. 4 so far.
    """
    result = trainer.validate(validation)
    with writer.as_default(step=step):
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
    _write_json(trainer.model_dir / VALIDATED, {"step": step})
    return best


def train(
    config: TrainingConfig,
    strategy=None,
    *,
    images: tuple | None = None,
    export: bool = True,
    overwrite: bool = False,
) -> Trainer:
    """Runs (or resumes) a training job and exports the result.

    Under `MultiWorkerMirroredStrategy` every worker runs this with the same
    config and a shared `model_dir`; every worker computes, only the chief
    writes into `model_dir` (see `cluster_role`).

    Args:
        config: The run's config.
        strategy: Distribution strategy; `default_strategy()` if None.
        images: The result of `prepare_images(config)`, if already loaded.
        export: Export the best (else the latest) weights at the end.
        overwrite: Start over in a `model_dir` that holds another run.

    Returns:
        The `Trainer`; after an export its networks hold the exported weights
        (in a distributed run, the exported copies do).

    Raises:
        ValueError: For an invalid config or unusable data.
        run_folder.RunFolderError: For a `model_dir` that is a file, is in use
            by another process, or holds a run with other settings.
        NonFiniteError: If a loss or gradient norm becomes NaN or inf.
    """
    config.validate()
    train_images, val_images, train_names = images or prepare_images(config)
    trainer = Trainer(config, strategy)
    with contextlib.ExitStack() as stack:
        stack.callback(trainer.close)
        _open_run(trainer, overwrite, stack)
        _train_loop(trainer, train_images, val_images, train_names)
        if export and trainer.is_chief:
            # Export the best weights when validation chose some (the paper).
            trainer.restore_best()
            nets = trainer.export_networks()
            export_models(trainer.model_dir, **nets)
            if trainer.distributed:
                for name, net in nets.items():
                    if net is not None:
                        setattr(trainer, name, net)
    return trainer


def _train_loop(trainer: Trainer, train_images, val_images, train_names) -> None:
    config, model_dir = trainer.config, trainer.model_dir
    resumed = trainer.restore()
    start = int(trainer.step.numpy())  # int() refuses a MirroredVariable
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
    logging.info(
        "%d worker(s), %d replica(s) in sync; this process is %s%s",
        trainer.workers,
        trainer.strategy.num_replicas_in_sync,
        trainer.task,
        " (writes the run folder)" if trainer.is_chief else " (writes nothing there)",
    )
    if trainer.is_chief:
        _write_json(model_dir / "config.json", dataclasses.asdict(config))
    dataset = data.training_dataset(
        train_images,
        config.image_size,
        config.batch_size,
        seed=config.seed,
        start_step=start,
        names=train_names,
    )
    dataset = trainer.add_noise(dataset, start_step=start)
    if trainer.workers > 1:
        # Every worker builds the same stream of global batches; DATA sharding
        # gives each its own part of every batch, so the run equals a
        # one-process run with the same global batch.
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        dataset = dataset.with_options(options)
    iterator = iter(trainer.strategy.experimental_distribute_dataset(dataset))
    validation = (
        trainer.validation_batch(
            data.validation_crops(
                val_images, config.image_size, crops=validation_crop_mode(config)
            )
        )
        if val_images and trainer.is_chief
        else None
    )
    writer = (
        tf.summary.create_file_writer(str(model_dir / "logs"))
        if trainer.is_chief
        else tf.summary.create_noop_writer()
    )
    best = trainer.best_value()
    if (
        validation is not None
        and start > 0
        and start % config.steps_per_epoch == 0
        and trainer.validated_step() < start
    ):
        # Killed between this epoch's checkpoint and its validation.
        print(f"Validating epoch {start // config.steps_per_epoch} (missed before)")
        best = _validate_epoch(trainer, validation, writer, start, best)

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
            _check_finite(values, step, trainer)
            if step % config.checkpoint_every == 0:
                trainer.manager.save(checkpoint_number=step)
            bar.update(
                step - epoch * config.steps_per_epoch,
                [(k, float(t.result())) for k, t in trainer.trackers.items()],
            )
            if step % 10 == 0 or step == end:
                with writer.as_default(step=step):
                    for name, value in values.items():
                        if not name.startswith(GRAD_NORM):
                            tf.summary.scalar(f"train/{name}", value)
        seconds = time.perf_counter() - started
        trainer.manager.save(checkpoint_number=step)
        with writer.as_default(step=step):
            tf.summary.scalar("train/seconds_per_epoch", seconds)
        if validation is not None:
            best = _validate_epoch(trainer, validation, writer, step, best)
        writer.flush()


def export_run(model_dir: str | os.PathLike) -> pathlib.Path:
    """Exports an existing training run: its best weights, else its latest.

    Args:
        model_dir: A folder written by `train`.

    Returns:
        The export directory.

    Raises:
        FileNotFoundError: If the folder holds no run or no checkpoint.
        run_folder.RunFolderError: If another process trains or exports it.
        ValueError: If the weights are not finite.
    """
    model_dir = pathlib.Path(model_dir)
    config_path = model_dir / "config.json"
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model_dir {model_dir} is not a folder")
    if not config_path.exists():
        raise FileNotFoundError(
            f"model_dir {model_dir} holds no training run (no config.json)"
        )
    config = TrainingConfig(**json.loads(config_path.read_text()))
    with run_folder.RunLock(model_dir, "exporting"):
        run_folder.remove_leftovers(model_dir)
        trainer = Trainer(config)
        if not trainer.restore():
            raise FileNotFoundError(f"model_dir {model_dir} holds no checkpoint")
        trainer.restore_best()
        return export_models(model_dir, **trainer.export_networks())
