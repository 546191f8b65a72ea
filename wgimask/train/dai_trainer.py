"""One NetE or NetM training run's state and step: `DaiTrainer`.

`DaiTrainer` holds what a run of `wgimask.train.dai` works with: the network
(and, for NetM, the frozen NetE), Adam, the step counter, the distributed
`tf.function` training step, validation on fixed masks, checkpoints, the best
weights and the exported ``.keras`` files. `default_strategy` picks the
`tf.distribute` strategy. The loop that drives it, and where each piece comes
from in Dai et al.'s code: `wgimask.train.dai`.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Mapping

import keras
import numpy as np
import tensorflow as tf

from wgimask import run_folder
from wgimask.nn import dai
from wgimask.train import checkpoints, data
from wgimask.train.dai_settings import RESUMABLE_SETTINGS, model_path

#: Adam's epsilon in PyTorch (Keras' default is 1e-7).
ADAM_EPSILON = 1e-8


def default_strategy() -> tf.distribute.Strategy:
    """`MirroredStrategy` over the GPUs when there are several, else the default."""
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _psnr(mse):
    return 10.0 * tf.math.log(1.0 / tf.maximum(mse, 1e-12)) / tf.math.log(10.0)


class DaiTrainer:
    """Network, optimiser, step, checkpoints and validation of one run."""

    def __init__(self, network, settings, run_dir, strategy, nete=None):
        self.network = network
        self.settings = settings
        self.run_dir = pathlib.Path(run_dir)
        self.strategy = strategy or default_strategy()
        self.replicas = self.strategy.num_replicas_in_sync
        if settings.batch_size % self.replicas:
            raise ValueError(
                f"`batch_size` must be a multiple of the {self.replicas} replicas, "
                f"received {settings.batch_size}."
            )
        keras.utils.set_random_seed(settings.seed)
        with self.strategy.scope():
            self.model = self._build()
            self.nete = None if nete is None else self._frozen(nete)
            self.optimizer = keras.optimizers.Adam(
                settings.learning_rate,
                beta_1=settings.adam_beta_1(network),
                beta_2=settings.beta_2,
                epsilon=ADAM_EPSILON,
                name=f"adam_{network}",
            )
            # Keras 3: the slots must exist before the first distributed step.
            self.optimizer.build(self.model.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        names = ("loss", "psnr", "density")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}
        # Weights listed one by one: a Keras 3 model handed whole to
        # tf.train.Checkpoint tracks only part of them (see trainer.py).
        self.checkpoint = tf.train.Checkpoint(
            step=self.step,
            weights=list(self.model.weights),
            optimizer=list(self.optimizer.variables),
        )
        self.manager = tf.train.CheckpointManager(
            self.checkpoint,
            self.run_dir / run_folder.CHECKPOINTS,
            max_to_keep=settings.keep_checkpoints,
        )
        self.best_manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(weights=list(self.model.weights)),
            self.run_dir / run_folder.BEST,
            max_to_keep=1,
        )
        self._step_fn = None

    # --- Networks -------------------------------------------------------------

    def _build(self, name=None):
        s = self.settings
        if self.network == "nete":
            return dai.build_nete(
                s.image_size, s.channels, s.width, name=name or "nete"
            )
        return dai.build_netm(
            s.image_size,
            s.channels,
            s.density,
            s.netm_filters,
            s.netm_blocks,
            s.mean_shift_iterations,
            name=name or "netm",
        )

    def _frozen(self, nete):
        """The frozen NetE, a copy in the strategy's scope for several replicas."""
        s = self.settings
        if not isinstance(nete, dai.NetE):
            raise ValueError(
                f"`nete` must be a wgimask.nn.dai.NetE, received {type(nete).__name__}."
            )
        if (nete.channels, nete.width) != (s.channels, s.width):
            raise ValueError(
                f"`nete` must have channels={s.channels} and width={s.width} as the "
                f"settings, received channels={nete.channels}, width={nete.width}."
            )
        nete.trainable = False
        if self.replicas == 1:
            return nete
        copy = dai.NetE.from_config(nete.get_config())
        copy.set_weights(nete.get_weights())
        copy.trainable = False
        return copy

    # --- Data and the step ----------------------------------------------------

    def training_masks(self, images, step: int):
        """NetE's training masks of a batch at a step (keyed on (seed, step))."""
        s = self.settings
        seed = tf.constant([s.seed, step], tf.int64)
        if s.nete_masks == "exact":
            shape = tf.shape(images)
            return data.random_masks(shape[0], shape[1], shape[2], s.density, seed)
        return dai.nete_training_masks(tf.shape(images), s.density, seed)

    def check_batch(self, images) -> tf.Tensor:
        """The batch as a float32 tensor; ValueError unless the global batch shape."""
        s = self.settings
        images = tf.convert_to_tensor(images, tf.float32)
        wanted = (s.batch_size, s.image_size, s.image_size, s.channels)
        if tuple(images.shape) != wanted:
            raise ValueError(
                f"every batch must have shape {wanted} (the global batch), "
                f"received {tuple(images.shape)}."
            )
        return images

    def _distribute(self, *tensors):
        if self.replicas == 1:
            return tensors
        per = self.settings.batch_size // self.replicas

        def value(context):
            i = context.replica_id_in_sync_group
            return tuple(t[i * per : (i + 1) * per] for t in tensors)

        return self.strategy.experimental_distribute_values_from_function(value)

    def _replica_step(self, images, masks=None):
        global_batch = self.settings.batch_size

        def average(per_image):
            return tf.nn.compute_average_loss(per_image, global_batch_size=global_batch)

        with tf.GradientTape() as tape:
            if self.network == "nete":
                inpainted = self.model({"image": images, "mask": masks}, training=True)
                per_image = dai.nete_loss(images, inpainted)
                known = masks
            else:
                known = self.model({"image": images}, training=True)
                per_image = dai.netm_loss(self.nete, images, known)
            loss = average(per_image)
        variables = self.model.trainable_variables
        grads = tape.gradient(loss, variables)
        self.optimizer.apply(grads, variables)
        density = average(tf.reduce_mean(known, axis=(1, 2, 3)))
        return {"loss": loss, "density": density}

    def train_step(self, images, masks=None) -> dict[str, tf.Tensor]:
        """One synchronous step on a global batch; returns its values."""
        if self._step_fn is None:

            def step(*inputs):
                per_replica = self.strategy.run(self._replica_step, args=inputs)
                values = {
                    k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                    for k, v in per_replica.items()
                }
                values["psnr"] = _psnr(values["loss"])
                for name, tracker in self.trackers.items():
                    tracker.update_state(values[name])
                self.step.assign_add(1)
                return values

            self._step_fn = tf.function(step)
        inputs = (images,) if masks is None else (images, masks)
        if self.replicas == 1:
            return self._step_fn(*inputs)
        return self._step_fn(*self._distribute(*inputs))

    def reset_optimizer(self) -> None:
        """Zeroes Adam's moments and step count, as a new PyTorch optimiser."""
        for variable in self.optimizer.variables:
            variable.assign(tf.zeros_like(variable))

    # --- Validation -----------------------------------------------------------

    @property
    def selection(self) -> str:
        """The `validate` score the best weights maximise: NetE's PSNR, NetM's
        with the masks it is served and evaluated with (``psnr_sampled``)."""
        return "psnr" if self.network == "nete" else "psnr_sampled"

    def validate(self, crops: np.ndarray) -> dict[str, float]:
        """Mean per-image PSNR and MSE on fixed masks, inference mode.

        NetE: Bernoulli(D) masks (Dai's ``val``). NetM: its maps binarised by
        `dai.bernoulli_mask` (Dai's ``val``) as ``psnr``, by
        `dai.sampled_mask` (the evaluation's and the SavedModel's masks) as
        ``psnr_sampled`` and by `dai.topk_mask` as ``psnr_topk``. The best
        weights are chosen by `selection`.
        """
        s = self.settings
        sums: dict[str, float] = {}
        count = 0
        for start in range(0, len(crops), s.batch_size):
            images = tf.constant(crops[start : start + s.batch_size], tf.float32)
            seed = tf.constant([s.seed, -1 - start], tf.int64)
            results = {}
            if self.network == "nete":
                masks = dai.nete_training_masks(tf.shape(images), s.density, seed)
                results[""] = self.model(
                    {"image": images * masks, "mask": masks}, training=False
                )
            else:
                maps = self.model({"image": images}, training=False)
                for key, masks in (
                    ("", dai.bernoulli_mask(maps, seed)),
                    ("_sampled", dai.sampled_mask(maps, s.density, seed)),
                    ("_topk", dai.topk_mask(maps, s.density)),
                ):
                    results[key] = self.nete(
                        {"image": images * masks, "mask": masks}, training=False
                    )
            for key, inpainted in results.items():
                mse = dai.reconstruction_mse(images, inpainted)
                for name, value in (("mse", mse), ("psnr", _psnr(mse))):
                    sums[name + key] = sums.get(name + key, 0.0) + float(
                        tf.reduce_sum(value)
                    )
            count += int(images.shape[0])
        return {name: value / count for name, value in sums.items()}

    # --- Files ------------------------------------------------------------------

    def check_config(self) -> None:
        """Refuses to resume a folder trained with other networks or objective."""
        path = self.run_dir / run_folder.CONFIG
        wanted = {"network": self.network, **self.settings.as_dict()}
        if path.exists() and any(
            (self.run_dir / run_folder.CHECKPOINTS).glob("*.index")
        ):
            saved = json.loads(path.read_text())
            names = (set(saved) | set(wanted)) - RESUMABLE_SETTINGS
            differing = sorted(n for n in names if saved.get(n) != wanted.get(n))
            if differing:
                changes = ", ".join(
                    f"{n} {saved.get(n, '(absent)')!r} -> {wanted.get(n, '(absent)')!r}"
                    for n in differing
                )
                raise run_folder.RunFolderError(
                    f"run folder {self.run_dir} holds a run with other settings "
                    f"({changes}); use another folder"
                )
        _write_json(path, wanted)

    def restore(self) -> int:
        """Restores the newest intact checkpoint; returns its step (0: none)."""
        latest = checkpoints.latest_intact(self.run_dir / run_folder.CHECKPOINTS)
        if latest is not None:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
        return int(self.step.numpy())

    def best(self) -> dict | None:
        path = self.run_dir / run_folder.BEST / run_folder.BEST_RECORD
        return json.loads(path.read_text()) if path.exists() else None

    def save_best(self, psnr: float, step: int) -> None:
        self.best_manager.save(checkpoint_number=step)
        _write_json(
            self.run_dir / run_folder.BEST / run_folder.BEST_RECORD,
            {"psnr": psnr, "step": step},
        )

    def export(self) -> None:
        """Writes the latest (and best) weights as .keras files, and the
        serving SavedModel (`wgimask.serve.dai_export`) of the best weights
        when the run validated, else of the latest."""
        from wgimask.serve import dai_export

        model_path(self.run_dir, self.network).parent.mkdir(exist_ok=True)
        # A model with distributed variables saves through a plain copy.
        latest = self.model if self.replicas == 1 else self._copy()
        _save_keras(latest, model_path(self.run_dir, self.network))
        served = latest
        best = checkpoints.latest_intact(self.run_dir / run_folder.BEST)
        if best is not None:
            copy = self._copy()  # the trained model keeps its latest weights
            tf.train.Checkpoint(weights=list(copy.weights)).restore(
                best
            ).assert_existing_objects_matched()
            _save_keras(copy, model_path(self.run_dir, self.network, best=True))
            served = copy
        folder = model_path(self.run_dir, self.network).parent / self.network
        if self.network == "nete":
            dai_export.save_nete(served, folder)
        else:
            nete = dai.NetE.from_config(self.nete.get_config())
            nete.set_weights(self.nete.get_weights())
            dai_export.save_netm(served, nete, folder)

    def _copy(self):
        """A copy of the model outside any strategy, with its weights."""
        copy = self._build(name=self.model.name)
        copy.set_weights(self.model.get_weights())
        return copy


def _save_keras(model: keras.Model, path: pathlib.Path) -> None:
    """Saves a .keras file whole: beside its place, then renamed into it (a
    run killed while saving leaves no half-written file that a NetM run or
    the evaluation would load)."""
    tmp = path.with_name(path.stem + ".partial.keras")
    model.save(tmp)
    tmp.replace(path)


def _write_json(path: pathlib.Path, value: Mapping) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2))
    tmp.replace(path)
