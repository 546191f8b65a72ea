"""`Trainer`: the networks, optimizers, distributed step, validation and
checkpoints of a training run, and the distribution strategy helpers.

Every step, from one forward pass, updates the critic with Eq. 2, the inpainting
generator with Eq. 3 and (in ``joint`` mode) the mask generator with Eq. 4, with
c = b = m(r, f). In ``inpaint`` mode the masks are uniformly random with exactly
round(D N) known pixels (the paper's Table 2(a) baseline).

Not in the paper (off by default, docs/learned-masks.md): with
``mask_operator="diffusion"`` m's Eq. 4 takes the exact homogeneous diffusion
inpainting of its mask instead of g's; in ``joint`` mode g and d still train on
m's masks with Eqs. 2-3, so the three losses share one forward pass of m and g
and differ only in which inpainting Eq. 4 sees. ``mask`` mode trains m alone
that way.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pathlib
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from wgimask import run_folder
from wgimask.config import TrainingConfig
from wgimask.evaluation import metrics
from wgimask.nn import dither, fused_conv, losses, point_placement_graph
from wgimask.nn.build import build_networks
from wgimask.nn.exact_diffusion import diffusion_inpaint
from wgimask.nn.networks import draw_seed
from wgimask.pipeline import MaskPipeline
from wgimask.train import checkpoints, data
from wgimask.train.cluster import (
    WORKER_TEMP_PREFIX,
    check_global_batch,
    cluster_role,
    default_strategy,
    remove_dead_worker_folders,
)

# Prefix of the step's gradient-norm values (checked, not summarised).
GRAD_NORM = "grad_norm/"
# The best checkpoint's entry of each network: its weights, listed one by one.
BEST_WEIGHTS_SUFFIX = "_weights"


@contextlib.contextmanager
def _dtype_policy(policy: str):
    """Builds the layers created inside with the Keras dtype policy `policy`."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


#: The networks each mode trains.
TRAINED = {
    "joint": ("generator", "critic", "mask_generator"),
    "inpaint": ("generator", "critic"),
    "mask": ("mask_generator",),
}


class Trainer:
    """Networks, optimizers, the distributed step, validation and checkpoints.

    Args:
        config: A validated `TrainingConfig`.
        strategy: Distribution strategy; `default_strategy()` if None.
    """

    def __init__(self, config: TrainingConfig, strategy=None):
        self.config = config.validate()
        #: The mask pipeline, decoded once from the config.
        self.pipeline = MaskPipeline.from_config(self.config)
        if strategy is None:
            check_global_batch(config.batch_size)
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
        if self.is_chief:
            self.write_dir = self.model_dir
        else:
            remove_dead_worker_folders()
            self.write_dir = pathlib.Path(
                tempfile.mkdtemp(prefix=f"{WORKER_TEMP_PREFIX}{os.getpid()}-")
            )
        keras.utils.set_random_seed(config.seed)
        with self.strategy.scope(), _dtype_policy(config.precision):
            nets = build_networks(config)
            self.generator = nets["generator"]
            self.critic = nets["critic"]
            self.mask_generator = nets["mask_generator"]
            self.optimizers = {
                name: self._optimizer(f"adam_{name}") for name in self.networks
            }
            # Keras 3 optimizers must create their slots inside the scope,
            # before the first distributed step.
            for name, network in self.networks.items():
                self.optimizers[name].build(network.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            if self.pipeline.halftoned_generator_masks:
                # m's mask and its point density from one pass (same weights).
                self._mask_and_confidence = (
                    self.mask_generator.mask_and_confidence_model()
                )
            if self.pipeline.points == "densify":
                self._confidence_and_correction = (
                    self.mask_generator.confidence_and_correction_model()
                )
        tracked = {
            "joint": ("critic_loss", "generator_loss", "mask_loss", "density", "mae"),
            "inpaint": ("critic_loss", "generator_loss", "mask_loss", "density", "mae"),
            "mask": ("mask_loss", "density"),
        }[config.mode]
        if self.pipeline.diffusion_operator:
            # Eq. 4's MAE term: that of the diffusion inpainting of m's mask.
            tracked = (*tracked, "diffusion_mae")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in tracked}
        self.checkpoint = tf.train.Checkpoint(
            step=self.step,
            **self.networks,
            **{f"optimizer_{k}": v for k, v in self.optimizers.items()},
        )
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self.write_dir / run_folder.CHECKPOINTS, max_to_keep=3
        )
        # The best weights by validation Eq. 4, kept apart from the latest.
        # Each network's weights are listed one by one: a Keras 3 model given
        # to tf.train.Checkpoint as a whole tracks only some of them (5 of
        # g's 46; the fused blocks' kernels not at all), and restoring that
        # mixed the best step's weights with the latest ones.
        self.best_manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(
                **{
                    f"{name}{BEST_WEIGHTS_SUFFIX}": list(network.weights)
                    for name, network in self.networks.items()
                }
            ),
            self.write_dir / run_folder.BEST,
            max_to_keep=1,
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
        """The trained networks (with optimizers and checkpoints), by name."""
        return {name: getattr(self, name) for name in TRAINED[self.config.mode]}

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

    def _forward(self, batch, training: bool, generator: bool = True):
        """m's (or the batch's random) masks and, if `generator`, g's inpainting.

        Returns:
            (mask, generator_mask, inpainted): m's mask (what m's loss sees),
            the mask g and d see (the same, or with ``generator_masks=
            "halftoned"`` m's density halftoned as at inference; with
            ``mask_points="densify"`` both are the densified points) and g's
            inpainting from it (None without `generator`).
        """
        image = batch["image"]
        generator_mask = None
        if self.mask_generator is None:
            mask = batch["mask"]
        elif self.pipeline.halftoned_generator_masks:
            mask, confidence = self._mask_and_confidence(
                {"image": image, "seed": batch["mask_seed"]}, training=training
            )
            generator_mask = dither.halftoned_masks(
                confidence, self.config.density, self._halftone_seeds(image, training)
            )
        elif self.pipeline.points == "densify":
            confidence, correction = self._confidence_and_correction(
                {"image": image, "seed": batch["mask_seed"]}, training=training
            )
            hard = point_placement_graph.densified_masks(
                image,
                correction,
                self.config.density,
                self._halftone_seeds(image, training),
            )
            # m's loss sees the densified points; its gradient goes straight
            # through to m's point density, as with the ordered dither.
            mask = point_placement_graph.straight_through(hard, confidence)
        else:
            mask = self.mask_generator(
                {"image": image, "seed": batch["mask_seed"]}, training=training
            )
        if generator_mask is None:
            generator_mask = mask
        if not generator:
            return mask, generator_mask, None
        inpainted = self.generator(
            {
                "known": image * generator_mask,
                "mask": generator_mask,
                "seed": batch["generator_seed"] * (1.0 - generator_mask),
            },
            training=training,
        )
        return mask, generator_mask, inpainted

    def _halftone_seeds(self, image, training: bool):
        """(B,) seeds of `dither.halftoned_masks` for this replica's images.

        Inference halftones with seed 0, so validation does too. Training
        draws a new seed per image and step (the Bayer phase below 15 %),
        distinct across replicas: the global batch's index of the image.
        """
        local = tf.shape(image, out_type=tf.int64)[0]
        if not training:
            return tf.zeros([local], tf.int64)
        replica = tf.distribute.get_replica_context()
        index = tf.cast(replica.replica_id_in_sync_group if replica else 0, tf.int64)
        first = self.config.seed + self.step * self.config.batch_size + index * local
        return first + tf.range(local, dtype=tf.int64)

    def _replica_step(self, batch):
        config = self.config
        global_batch = config.batch_size
        image = batch["image"]
        has_critic = self.critic is not None
        tapes = {name: tf.GradientTape() for name in self.networks}
        for tape in tapes.values():
            tape.__enter__()
        try:
            # In mask mode g is not trained: no forward pass of it either.
            mask, g_mask, inpainted = self._forward(
                batch, training=True, generator=has_critic
            )
            per_example = {}
            if has_critic:
                score_fake = self.critic(
                    {"image": inpainted, "mask": g_mask}, training=True
                )
                score_real = self.critic(
                    {"image": image, "mask": g_mask}, training=True
                )
                per_example["critic"] = losses.critic_loss(score_fake, score_real)
                per_example["generator"] = losses.generator_loss(
                    score_fake, image, inpainted, config.alpha
                )
            diffused = None
            if self.pipeline.diffusion_operator:
                # Exact diffusion of m's mask; its gradient reaches m through
                # the mask (implicit differentiation), and nothing else.
                diffused = diffusion_inpaint(image, mask)
            per_example["mask_generator"] = losses.mask_loss(
                mask,
                image,
                inpainted if diffused is None else diffused,
                config.density,
                config.beta,
            )
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
        values = {
            "mask_loss": loss["mask_generator"],
            "density": average(losses.mask_density(mask)),
        }
        if has_critic:
            values |= {
                "critic_loss": loss["critic"],
                "generator_loss": loss["generator"],
                "mae": average(losses.mean_absolute_error(image, inpainted)),
            }
        if diffused is not None:
            values["diffusion_mae"] = average(
                losses.mean_absolute_error(image, diffused)
            )
        return norms | values

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
            fused_conv.reference_ops()
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
        """Validation of the networks in inference mode.

        Returns:
            ``psnr`` and ``ssim`` (mean over images) of g's inpainting on the
            masks (``mg``; in ``mask`` mode g is exact diffusion), ``psnr_hd``
            and ``ssim_hd`` of the exact homogeneous diffusion inpainting of
            the same masks (``mg+hd``; with ``generator_masks="halftoned"``
            both use the inference halftoning of m's density, the masks the
            ``wgimask`` command makes), ``mask_loss`` (Eq. 4 with m's
            operator, which chooses the best weights), ``density`` and
            ``mae`` (0-1 scale) as floats, and the ``mask`` and ``inpainted``
            tensors.
        """
        mask, g_mask, inpainted = self._forward(batch, training=False)
        image = batch["image"]
        diffused = diffusion_inpaint(image, mask)
        operator = diffused if self.pipeline.diffusion_operator else inpainted
        eq4 = losses.mask_loss(
            mask, image, operator, self.config.density, self.config.beta
        )
        if g_mask is not mask:
            # mg and mg+hd on the masks inference makes (g's own).
            mask, diffused = g_mask, diffusion_inpaint(image, g_mask)
        f = image.numpy()

        def mean(metric, result):
            return float(
                np.mean([metric(a, b) for a, b in zip(f, result.numpy(), strict=True)])
            )

        return {
            "psnr": mean(metrics.psnr, inpainted),
            "ssim": mean(metrics.ssim, inpainted),
            "psnr_hd": mean(metrics.psnr, diffused),
            "ssim_hd": mean(metrics.ssim, diffused),
            "mask_loss": float(tf.reduce_mean(eq4)),
            "density": float(tf.reduce_mean(losses.mask_density(mask))),
            "mae": float(tf.reduce_mean(losses.mean_absolute_error(image, inpainted))),
            "mask": mask,
            "inpainted": inpainted,
        }

    # --- Checkpoints --------------------------------------------------------------

    def restore(self) -> bool:
        """Restores the newest intact checkpoint of `model_dir`, if any.

        Returns:
            True if a checkpoint was restored.
        """
        # The shared folder: a non-chief worker resumes from the chief's saves.
        latest = checkpoints.latest_intact(self.model_dir / run_folder.CHECKPOINTS)
        if latest is None:
            return False
        self.checkpoint.restore(latest).assert_existing_objects_matched()
        return True

    def restore_best(self) -> bool:
        """Loads the best weights by validation Eq. 4 into the networks, if kept.

        Returns:
            True if best weights were found and loaded.
        """
        best = checkpoints.latest_intact(self.model_dir / run_folder.BEST)
        if best is None:
            return False
        keys = {name.split("/")[0] for name, _ in tf.train.list_variables(best)}
        wanted = {f"{name}{BEST_WEIGHTS_SUFFIX}" for name in self.networks}
        if not wanted <= keys:
            # Written before the weights were listed one by one: it holds only
            # some of them, and restoring it would mix two steps.
            logging.warning(
                "%s was written by an earlier version that kept only part of "
                "the best weights; using the latest weights instead (train on "
                "to write a complete best checkpoint)",
                best,
            )
            return False
        self.best_manager.checkpoint.restore(best).assert_existing_objects_matched()
        return True

    def best_value(self) -> float:
        """Validation Eq. 4 of the kept best weights (inf if none)."""
        path = self.model_dir / run_folder.BEST / run_folder.BEST_RECORD
        return json.loads(path.read_text())["mask_loss"] if path.exists() else math.inf

    def save_best(self, value: float) -> None:
        """Keeps the current weights as the best, with their validation Eq. 4."""
        step = int(self.step.numpy())
        self.best_manager.save(checkpoint_number=step)
        write_json(
            self.model_dir / run_folder.BEST / run_folder.BEST_RECORD,
            {"mask_loss": value, "step": step},
        )

    def validated_step(self) -> int:
        """The last step whose validation finished (0 if none)."""
        path = self.model_dir / run_folder.VALIDATED
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
        with _dtype_policy(self.config.precision):
            copies = build_networks(self.config)
        for name, copy in copies.items():
            if copy is not None:
                copy.set_weights(nets[name].get_weights())
        return copies


# Records the last step whose validation finished, so that a run killed between
# an epoch's checkpoint and its validation redoes that validation on resume.


def write_json(path: pathlib.Path, value: dict) -> None:
    """Writes `value` as JSON atomically (a temporary file renamed into place)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2))
    tmp.replace(path)
