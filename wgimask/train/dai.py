"""Training Dai et al.'s NetE and NetM (the paper's Table 2 comparison).

A small library, separate from the mask GAN's `Trainer`: `train_nete` trains
the inpainting network on Bernoulli random masks, `train_netm` the mask
network against a trained, frozen NetE (`wgimask.nn.dai` has the networks,
their losses and where each piece comes from in Dai's code). Both take a
`DaiSettings`, a stream of image batches and a run folder, run a `tf.function`
step under a `tf.distribute` strategy (`MirroredStrategy` over several GPUs,
else the default strategy), checkpoint with `tf.train.CheckpointManager` and
resume from the newest intact checkpoint of the folder.

Ported from ``usstdqq/deep-adaptive-sampling-mask``:

* ``train_NetE.py``: Adam, learning rate 2e-4, betas (0.5, 0.999), batch 128
  (lines 21-24, 78); 64x64 random crops with random horizontal flips (lines
  48-54); Bernoulli(D) masks per image and pixel (lines 107-114); MSE on the
  [0, 1] scale (line 121); per-epoch validation PSNR on random masks, the
  best weights kept (lines 136-172).
* ``train_NetM.py``: Adam, learning rate 2e-4 with PyTorch's default betas
  (0.9, 0.999) (lines 79-81, 106-108: only NetM's parameters move, NetE's
  learning rate is 0); crops without flips (lines 48-53); NetM in training
  mode, NetE in inference mode (lines 98-100); the MSE of NetE's
  reconstruction from the continuous map (lines 134-138); validation with
  Bernoulli-binarised maps (lines 166-233), the best weights kept.
* Both scripts run 800 epochs of 100,000 ImageNet images (782 steps each,
  625,600 steps); `DaiSettings` defaults to that.

Deviations (all stated where they apply):

* Data: the crops come from `wgimask.train.data.training_dataset` (images
  drawn with replacement, keyed on (seed, step) so a resumed run continues
  the same stream; images smaller than the crop are upscaled) instead of
  shuffled epochs of ``ImageFolder`` with ``RandomCrop(pad_if_needed)``.
  Any iterable of (batch, 64, 64, C) float32 arrays in [0, 1] may be given.
* Masks are stateless draws keyed on (seed, step), so a resumed run sees the
  masks it would have seen. ``nete_masks="exact"`` (not Dai's) draws masks
  with exactly round(D N) known pixels instead.
* Optimiser: Adam's epsilon is PyTorch's 1e-8. Dai re-creates the optimiser
  at every epoch (``train_NetE.py`` line 99, ``train_NetM.py`` line 106),
  which resets its moments; here the moments persist unless
  ``optimizer_reset_every`` is set (782 reproduces Dai's epochs).
* Several replicas: every replica normalises its batch-norm layers with its
  own part of the batch (Dai trained on one GPU).
* Validation (``validate_every`` steps, off by default; Dai: every epoch)
  reports the mean per-image PSNR (Dai: the PSNR of each batch's MSE,
  averaged) on fixed masks. The step values go to TensorBoard (the run
  folder's ``logs/``) every 10 steps and at every validation.

``train.py --mode=nete|netm`` fills `DaiSettings` from its flags; ``run_dir``
is the run folder, `crop_stream` the data, ``progress`` a per-step callback.
The exports are the ``.keras`` files (`model_path`) and a SavedModel with a
serving signature (`wgimask.serve.dai_export`).

Modules: `wgimask.train.dai_settings` holds `DaiSettings`, `crop_stream` and
`model_path`, `wgimask.train.dai_trainer` the run's state and step
(`DaiTrainer`); this module the training loop and its entry points, and it
re-exports the names of the other two.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterable

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from wgimask import run_folder
from wgimask.nn import dai
from wgimask.train.dai_settings import (  # noqa: F401 - part of this module's API
    BEST_MODEL_FILE,
    DAI_BETA_1,
    DAI_STEPS,
    MODEL_FILE,
    NETE_MASKS,
    NETWORKS,
    RESUMABLE_SETTINGS,
    DaiSettings,
    crop_stream,
    model_path,
)
from wgimask.train.dai_trainer import (  # noqa: F401 - part of this module's API
    ADAM_EPSILON,
    DaiTrainer,
    default_strategy,
)
from wgimask.train.interrupts import TrainingInterruptedError, stop_requests

Progress = Callable[[int, dict[str, float]], None]
Batches = Iterable | Callable[[int], Iterable]


@dataclasses.dataclass
class DaiRun:
    """What `train_nete` and `train_netm` return.

    Attributes:
        model: The trained network (latest weights).
        step: The last step trained (also the one checkpointed).
        metrics: Means of the step values over the steps of this call ({} if
            none ran).
        best: ``{"psnr": ..., "step": ...}`` of the best validation (None
            without validation).
    """

    model: keras.Model
    step: int
    metrics: dict[str, float]
    best: dict | None = None


# --------------------------------------------------------------------------
# The training loop shared by both networks
# --------------------------------------------------------------------------


def _run(
    network: str,
    settings: DaiSettings,
    batches: Batches,
    run_dir,
    *,
    nete=None,
    progress: Progress | None,
    strategy,
    validation,
) -> DaiRun:
    settings = settings.validate()
    if settings.validate_every and validation is None:
        raise ValueError(
            f"`validate_every` is {settings.validate_every} but no `validation` "
            "crops were given."
        )
    if validation is not None:
        validation = np.asarray(validation, np.float32)
        side, channels = settings.image_size, settings.channels
        wanted = (side, side, channels)
        if (
            validation.ndim != 4
            or validation.shape[1:] != wanted
            or not len(validation)
        ):
            raise ValueError(
                f"`validation` must be crops of shape (N, {side}, {side}, "
                f"{channels}), received shape {validation.shape}."
            )
    run_dir = run_folder.prepare(run_dir)
    with run_folder.RunLock(run_dir, f"training {network}"):
        run_folder.remove_leftovers(run_dir)
        run = DaiTrainer(network, settings, run_dir, strategy, nete=nete)
        run.check_config()
        step = run.restore()
        if step:
            logging.info("Resuming %s training at step %d", network, step)
        best = run.best()
        stream = batches(step) if callable(batches) else batches
        iterator = iter(stream)
        last_saved = step
        ran = 0
        # TensorBoard: the step values every 10 steps and every validation.
        writer = tf.summary.create_file_writer(str(run_dir / run_folder.LOGS))
        timing = _resumed_timing(run_dir, step)
        with stop_requests() as stop:
            while step < settings.steps:
                if stop and not ran:  # a signal before this call's first step
                    writer.close()
                    raise TrainingInterruptedError(step, stop[0])
                started, started_cpu = time.perf_counter(), time.process_time()
                try:
                    images = run.check_batch(next(iterator))
                except StopIteration:
                    logging.warning(
                        "The data ended at step %d of %d", step, settings.steps
                    )
                    break
                if (
                    settings.optimizer_reset_every
                    and step
                    and step % settings.optimizer_reset_every == 0
                ):
                    run.reset_optimizer()
                masks = run.training_masks(images, step) if network == "nete" else None
                values = {k: float(v) for k, v in run.train_step(images, masks).items()}
                # The training steps' times, the batch's data included, validation
                # and checkpoints not (as the other modes' validation.jsonl).
                timing["train_seconds"] += time.perf_counter() - started
                timing["train_cpu_seconds"] += time.process_time() - started_cpu
                step += 1
                ran += 1
                if not math.isfinite(values["loss"]):
                    raise FloatingPointError(
                        f"{network} training stopped at step {step}: the loss is "
                        f"{values['loss']}; the last checkpoint is step {last_saved} "
                        "(lower the learning rate, or check the data)"
                    )
                validating = (
                    settings.validate_every and step % settings.validate_every == 0
                )
                if (
                    validating
                    or step % settings.checkpoint_every == 0
                    or step == settings.steps
                ):
                    # Before the validation: its row and best weights never
                    # name a step that a resumed run would train again.
                    run.manager.save(checkpoint_number=step)
                    last_saved = step
                if validating:
                    scores = run.validate(validation)
                    chosen = scores[run.selection]
                    if best is None or chosen > best["psnr"]:
                        run.save_best(chosen, step)
                        best = {"psnr": chosen, "step": step}
                    run_folder.record_validation(
                        run_dir, {"step": step, **scores, **timing}, skip_damaged=True
                    )
                    values |= {f"validation/{k}": v for k, v in scores.items()}
                if step % 10 == 0 or "validation/psnr" in values:
                    with writer.as_default(step=step):
                        for name, value in values.items():
                            tf.summary.scalar(name, value)
                if progress is not None:
                    progress(step, values)
                if stop:
                    # A complete, finite step: keep it.
                    if step != last_saved:
                        run.manager.save(checkpoint_number=step)
                    writer.close()
                    raise TrainingInterruptedError(step, stop[0])
        writer.close()
        if step != last_saved:
            run.manager.save(checkpoint_number=step)
        run.export()
        metrics = (
            {name: float(t.result()) for name, t in run.trackers.items()} if ran else {}
        )
        return DaiRun(model=run.model, step=step, metrics=metrics, best=best)


def _resumed_timing(run_dir, step: int) -> dict[str, float]:
    """The training steps' seconds up to ``step``.

    Wall and CPU seconds as the last validation row at or before ``step``
    recorded them (0 for rows without them); the steps after that row are
    not counted, so the sum over resumed runs is a lower bound.
    """
    rows = run_folder.read_history(run_dir, skip_damaged=True)
    rows = [
        row
        for row in rows
        if isinstance(row, dict) and "step" in row and row["step"] <= step
    ]
    return {
        key: float(rows[-1].get(key, 0.0)) if rows else 0.0
        for key in ("train_seconds", "train_cpu_seconds")
    }


# --------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------


def train_nete(
    settings: DaiSettings,
    batches: Batches,
    run_dir: str | os.PathLike,
    *,
    progress: Progress | None = None,
    strategy: tf.distribute.Strategy | None = None,
    validation: np.ndarray | None = None,
) -> DaiRun:
    """Trains Dai's NetE on random masks of density D (``train_NetE.py``).

    Each step draws a mask per image (Bernoulli(D) per pixel, or exactly
    round(D N) pixels with ``nete_masks="exact"``), keyed on (seed, step),
    and minimises the MSE of NetE's inpainting with Adam. A run folder with
    checkpoints is resumed from its newest intact one; the run ends at
    ``settings.steps`` with a checkpoint and ``export/nete.keras`` (and
    ``export/nete_best.keras`` with validation).

    Args:
        settings: The run's `DaiSettings`.
        batches: Float32 (batch_size, 64, 64, C) batches in [0, 1] (the global
            batch), or a function from the first step to such an iterable
            (`crop_stream`), called with the resumed step.
        run_dir: The run folder (created; locked while training).
        progress: Called after every step with (step, values): ``loss``
            (MSE), ``psnr`` (of that MSE), ``density`` (of the masks) and,
            after a validation, ``validation/psnr`` and ``validation/mse``.
        strategy: A `tf.distribute` strategy; `default_strategy()` if None.
        validation: (N, 64, 64, C) crops, needed with ``validate_every``.

    Seeds Keras, numpy and Python's `random` with ``settings.seed``
    (`keras.utils.set_random_seed`) before building NetE.

    Returns:
        A `DaiRun`.

    Raises:
        ValueError: For bad settings or batches; `run_folder.RunFolderError`
            for a folder in use or holding a run with other settings;
            FloatingPointError for a non-finite loss.
    """
    return _run(
        "nete",
        settings,
        batches,
        run_dir,
        progress=progress,
        strategy=strategy,
        validation=validation,
    )


def train_netm(
    settings: DaiSettings,
    nete: dai.NetE,
    batches: Batches,
    run_dir: str | os.PathLike,
    *,
    progress: Progress | None = None,
    strategy: tf.distribute.Strategy | None = None,
    validation: np.ndarray | None = None,
) -> DaiRun:
    """Trains Dai's NetM against a trained, frozen NetE (``train_NetM.py``).

    NetM (training mode) gives a continuous map of mean D; NetE (set to
    ``trainable = False``, inference mode) inpaints from it as the mask; the
    MSE of that inpainting is minimised with Adam, the gradient reaching NetM
    through NetE. No term on the density. Checkpoints, resumption and exports
    as `train_nete` (``export/netm.keras``); NetE is not saved with the run.

    Args:
        settings: The run's `DaiSettings` (``width`` and ``channels`` must be
            NetE's).
        nete: The trained `NetE` of the same density (not changed).
        batches: As for `train_nete`.
        run_dir: The run folder.
        progress: As for `train_nete`; ``density`` is the map's mean and the
            validation adds ``validation/psnr_sampled`` (by which the best
            weights are chosen) and ``validation/psnr_topk``.
        strategy: A `tf.distribute` strategy; `default_strategy()` if None.
        validation: (N, 64, 64, C) crops, needed with ``validate_every``.

    Returns:
        A `DaiRun`.

    Raises:
        ValueError: For bad settings, batches or a NetE that does not match;
            `run_folder.RunFolderError`; FloatingPointError.
    """
    return _run(
        "netm",
        settings,
        batches,
        run_dir,
        nete=nete,
        progress=progress,
        strategy=strategy,
        validation=validation,
    )
