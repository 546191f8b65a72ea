"""Joint training of the mask GAN (Sec. 3.2) and of the inpainting WGAN alone.

`train(config)` runs the whole job: data, networks, the distributed step,
progress, TensorBoard summaries, checkpoints with resumption, best-weight
tracking and the final export. `Trainer` (`wgimask.train.trainer`) exposes the
pieces for tests and notebooks; `TrainingConfig` (`wgimask.config`)
holds the settings; `wgimask.run_folder` guards the run folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import pathlib
import signal
import sys
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from wgimask import run_folder
from wgimask.config import TrainingConfig
from wgimask.serve.export import export_models
from wgimask.train import checkpoints, cluster, data, warm_start
from wgimask.train.interrupts import (  # noqa: F401 - part of this module's API
    TrainingInterruptedError,
    stop_requests,
)
from wgimask.train.trainer import GRAD_NORM, Trainer, write_json

# Number of validation images written to TensorBoard at each epoch end.
SUMMARY_IMAGES = 4
#: One JSON line per validation (step, metrics, cumulative training time), for
#: tables and curves (`recipes/ablation_table.py`).
# Which equation each checked value belongs to, for the stop message.
_CHECKED = {
    "critic_loss": "critic loss (Eq. 2)",
    "generator_loss": "generator loss (Eq. 3)",
    "mask_loss": "mask loss (Eq. 4)",
}


class NonFiniteError(FloatingPointError):
    """Training stopped because a loss or gradient norm became NaN or inf."""


def validation_crop_mode(config: TrainingConfig) -> str:
    """The `data.validation_crops` mode that "auto" stands for."""
    if config.validation_crops != "auto":
        return config.validation_crops
    return validation_crop_mode_for(config.data_dir)


def validation_crop_mode_for(data_dir: str | None) -> str:
    """ "auto": tiles of the few large embedded photos, else centre crops."""
    return "tiles" if data_dir is None else "center"


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
    return data.source_split(
        config.data_dir,
        config.channels,
        validation_dir=config.validation_dir,
        validation_fraction=config.validation_fraction,
        seed=config.seed,
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
    elif not run_folder.finish_start_over(model_dir):
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
        last = checkpoints.latest_intact(trainer.model_dir / run_folder.CHECKPOINTS)
        kept = (
            f"the last good checkpoint is step {last.rsplit('-', 1)[1]}"
            if last
            else "no checkpoint was written"
        )
        raise NonFiniteError(
            f"training stopped at step {step}: the {what} is {value}; {kept} "
            "(lower --learning_rate, or check the data and --alpha/--beta)"
        )


def _validate_epoch(
    trainer, validation, writer, step: int, best: float, timing: dict
) -> float:
    """Validation, summaries and best-weight choice at an epoch end (the chief).

    Args:
        timing: ``train_seconds`` and ``train_cpu_seconds``, the wall and CPU
            time (all threads of the process) spent in training steps up to
            `step`, over all sessions of the run; written to `run_folder.HISTORY`.

    Returns:
        The best validation Eq. 4 so far.
    """
    result = trainer.validate(validation)
    scalars = ("psnr", "ssim", "psnr_hd", "ssim_hd", "mask_loss", "density", "mae")
    with writer.as_default(step=step):
        for name in scalars:
            tf.summary.scalar(f"validation/{name}", result[name])
        shown = slice(0, SUMMARY_IMAGES)
        tf.summary.image("validation/original", validation["image"][shown])
        tf.summary.image("validation/mask", result["mask"][shown])
        tf.summary.image(
            "validation/known", (validation["image"] * result["mask"])[shown]
        )
        tf.summary.image("validation/inpainted", result["inpainted"][shown])
    print(
        f"validation: psnr {result['psnr']:.2f} dB (with exact diffusion "
        f"{result['psnr_hd']:.2f} dB), Eq. 4 {result['mask_loss']:.4f}, "
        f"density {result['density']:.4f}"
    )
    if result["mask_loss"] < best:
        best = result["mask_loss"]
        trainer.save_best(best)
    # Earlier lines of a killed session's unfinished epoch are superseded.
    run_folder.record_validation(
        trainer.model_dir,
        {"step": step, **{k: result[k] for k in scalars}, **timing, "best": best},
    )
    write_json(trainer.model_dir / run_folder.VALIDATED, {"step": step})
    return best


class _PlainProgress:
    """Progress as plain lines, for logs and pipes.

    Keras' bar redraws itself with carriage returns and colour codes, which
    pile up in a file; this prints one line at most every `interval`
    seconds and at the end of the epoch.
    """

    def __init__(self, target: int, interval: float = 10.0) -> None:
        self.target = target
        self.interval = interval
        self._start = time.perf_counter()
        self._last = self._start

    def update(self, current: int, values) -> None:
        now = time.perf_counter()
        if current < self.target and now - self._last < self.interval:
            return
        self._last = now
        per_step = (now - self._start) / max(current, 1)
        metrics = " - ".join(f"{name}: {value:.4g}" for name, value in values)
        print(
            f"{current}/{self.target} - {per_step:.2f} s/step - {metrics}", flush=True
        )


def _progress(target: int, stateful: list[str]):
    """Keras' progress bar on a terminal, plain periodic lines elsewhere."""
    if sys.stdout.isatty():
        return keras.utils.Progbar(target, stateful_metrics=stateful)
    return _PlainProgress(target)


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
        agree = None
        if trainer.workers > 1:
            stack.enter_context(cluster.watch_peers(trainer.strategy))
            agree = _agreement(trainer.strategy)
        _train_loop(trainer, train_images, val_images, train_names, agree)
        if export and trainer.is_chief:
            # Export the best weights when validation chose some (the paper).
            trainer.restore_best()
            nets = trainer.export_networks()
            export_models(trainer.model_dir, **nets, pipeline=trainer.pipeline)
            if trainer.distributed:
                for name, net in nets.items():
                    if net is not None:
                        setattr(trainer, name, net)
        if agree is not None:
            # No worker ends before the chief has exported: TensorFlow's
            # coordination service reports a task that leaves early as
            # crashed.
            agree(0)
    return trainer


def _train_loop(trainer: Trainer, train_images, val_images, train_names, agree) -> None:
    config, model_dir = trainer.config, trainer.model_dir
    resumed = trainer.restore()
    if not resumed and config.init_from:
        # A resumed run continues from its own checkpoint instead.
        for name, source in warm_start.warm_start(
            config.init_from, trainer.networks
        ).items():
            logging.info("Warm start: the %s from %s", name, source)
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
        write_json(model_dir / run_folder.CONFIG, dataclasses.asdict(config))
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
        tf.summary.create_file_writer(str(model_dir / run_folder.LOGS))
        if trainer.is_chief
        else tf.summary.create_noop_writer()
    )
    best = trainer.best_value()
    previous = [
        row for row in run_folder.read_history(model_dir) if row["step"] <= start
    ]
    timing = {
        key: previous[-1][key] if previous else 0.0
        for key in ("train_seconds", "train_cpu_seconds")
    }
    if (
        validation is not None
        and start > 0
        and start % config.steps_per_epoch == 0
        and trainer.validated_step() < start
    ):
        # Killed between this epoch's checkpoint and its validation.
        print(f"Validating epoch {start // config.steps_per_epoch} (missed before)")
        best = _validate_epoch(trainer, validation, writer, start, best, timing)

    with stop_requests() as stop:
        _steps(trainer, iterator, validation, writer, start, best, timing, stop, agree)


def _steps(
    trainer, iterator, validation, writer, start, best, timing, stop, agree
) -> None:
    """The epochs from step `start`: steps, checkpoints, validations."""
    config = trainer.config
    step = start
    while step < config.total_steps:
        epoch = step // config.steps_per_epoch
        end = min((epoch + 1) * config.steps_per_epoch, config.total_steps)
        print(f"Epoch {epoch + 1}/{config.epochs}")
        bar = _progress(config.steps_per_epoch, list(trainer.trackers))
        for tracker in trainer.trackers.values():
            tracker.reset_state()
        started, started_cpu = time.perf_counter(), time.process_time()
        while step < end:
            values = trainer.train_step(next(iterator))
            step += 1
            _check_finite(values, step, trainer)
            if step % config.checkpoint_every == 0:
                trainer.manager.save(checkpoint_number=step)
            signum = stop[0] if stop else 0
            if agree is not None:
                # The workers of a cluster stop together, after the same
                # step: one that stopped alone would leave the others in the
                # next step's collectives.
                signum = agree(signum)
            if signum:
                # A complete, finite step: keep it (the workers of a cluster
                # save together).
                if step % config.checkpoint_every:
                    trainer.manager.save(checkpoint_number=step)
                writer.flush()
                if agree is not None:
                    agree(0)  # every worker has saved before any leaves
                raise TrainingInterruptedError(step, signum, here=bool(stop))
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
        timing["train_seconds"] += seconds
        timing["train_cpu_seconds"] += time.process_time() - started_cpu
        trainer.manager.save(checkpoint_number=step)
        with writer.as_default(step=step):
            tf.summary.scalar("train/seconds_per_epoch", seconds)
        if validation is not None:
            best = _validate_epoch(trainer, validation, writer, step, best, timing)
        writer.flush()


def _agreement(strategy):
    """A function of this worker's signal (0: none) that all workers call.

    It returns a signal that a worker holds (0 when none does), so all of
    them stop after the same step when one was signalled: one all-reduce per
    step of a vector with a slot per signal number (`tf.distribute` reduces
    by sum or mean only, not by maximum).
    """

    slots = int(signal.NSIG)

    @tf.function
    def signals(held):
        values = strategy.run(lambda value: value, args=(held,))
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, values, axis=None)

    def agree(signum: int) -> int:
        held = np.zeros(slots, np.float32)
        if signum:
            held[signum] = 1.0
        signalled = np.flatnonzero(signals(tf.constant(held)).numpy() > 0)
        return int(signalled[-1]) if signalled.size else 0

    return agree


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
    config_path = model_dir / run_folder.CONFIG
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model_dir {model_dir} is not a folder")
    if not config_path.exists():
        raise FileNotFoundError(
            f"model_dir {model_dir} holds no training run (no config.json)"
        )
    saved = json.loads(config_path.read_text())
    unknown = sorted(set(saved) - {f.name for f in dataclasses.fields(TrainingConfig)})
    if unknown:
        raise ValueError(
            f"{config_path} has settings this version does not know "
            f"({', '.join(unknown)}); export it with the version that trained it"
        )
    config = TrainingConfig(**saved)
    with run_folder.RunLock(model_dir, "exporting"):
        run_folder.finish_start_over(model_dir)
        run_folder.remove_leftovers(model_dir)
        trainer = Trainer(config)
        if not trainer.restore():
            raise FileNotFoundError(f"model_dir {model_dir} holds no checkpoint")
        trainer.restore_best()
        return export_models(
            model_dir, **trainer.export_networks(), pipeline=trainer.pipeline
        )
