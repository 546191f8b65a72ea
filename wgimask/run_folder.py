"""The run folder of a training job: one writer, safe reruns, no leftovers.

* `RunLock`: a lock file (``MODEL_DIR/.lock``) held while a run trains or
  exports. A second process stops at once with the folder and the holder's
  process id. The lock is an `fcntl.flock` on the file, which the kernel
  releases when its holder dies, so the lock of a killed run is stale by
  construction and taken over (and reported) by the next run.
* `check_resumable`: refuses to resume a folder whose saved config differs in
  a field that changes the networks or the objective.
* `remove_leftovers`: removes the temporary folders a kill leaves behind
  (``ckpt-N_temp`` of checkpoints, ``.export-XXXX`` of exports), after
  putting back a complete export that a kill left set aside.
* `start_over`: empties a run folder for ``--overwrite``;
  `finish_start_over` completes one that a kill interrupted.

`CONFIG`, `CHECKPOINTS`, `BEST`, ... are the names of everything a run
writes; no other module spells them out.
"""

from __future__ import annotations

import fcntl
import json
import os
import pathlib
import shutil
import socket

from absl import logging

#: Fields a run may change when it resumes: they change how long or how fast
#: it trains, where its data comes from or how it is validated, not what the
#: networks are or which objective they minimise. Any other field (also one
#: added in a later version) must match the saved config.
RESUMABLE_FIELDS = frozenset(
    {
        "epochs",
        "steps_per_epoch",
        "checkpoint_every",
        "batch_size",
        "learning_rate",
        "lr_schedule",
        "seed",
        "data_dir",
        "validation_dir",
        "validation_fraction",
        "validation_crops",
        "model_dir",
        "jit_compile",
        "precision",
        # A warm start only sets the weights a fresh run starts from.
        "init_from",
    }
)
# The names of everything a run writes into its folder; no other module
# spells them out.
#: The run's `TrainingConfig` as JSON.
CONFIG = "config.json"
#: Checkpoints of the latest steps (`tf.train.CheckpointManager`).
CHECKPOINTS = "checkpoints"
#: The checkpoint of the best validated step, and `BEST_RECORD` in it.
BEST = "best"
#: ``{"mask_loss": ..., "step": ...}`` of the best validated step, in `BEST`.
BEST_RECORD = "best.json"
#: TensorBoard summaries.
LOGS = "logs"
#: The exported models (SavedModels, .keras files, LiteRT parts).
EXPORT = "export"
#: One JSON line per validation.
HISTORY = "validation.jsonl"
#: ``{"step": ...}`` of the last validated step, so a resumed run neither
#: repeats nor skips a validation.
VALIDATED = "validated.json"
#: What a run writes into its folder (removed by `start_over`).
RUN_CONTENTS = (CHECKPOINTS, BEST, LOGS, EXPORT, CONFIG, HISTORY, VALIDATED)
LOCK_NAME = ".lock"
#: A NetE or NetM run's exported network: the latest weights, and the best
#: validated ones when the run validated (`served_dai_model`).
DAI_MODEL_FILE = "{network}.keras"
DAI_BEST_MODEL_FILE = "{network}_best.keras"
#: Present while `start_over` empties a folder, so that the next run finishes
#: an emptying that a kill interrupted before it reads anything of the old run.
STARTING_OVER = ".starting-over"
#: Prefix of the temporary folders an export is written to (renamed into
#: place when complete).
EXPORT_TEMP_PREFIX = ".export-"
#: Prefix of the folder a replaced export is set aside in until the new one
#: is in place (`wgimask.serve.model_files.replace_folder`).
EXPORT_OLD_PREFIX = f"{EXPORT_TEMP_PREFIX}old-"


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked (one-line message)."""


def prepare(model_dir: str | os.PathLike) -> pathlib.Path:
    """Creates the run folder; refuses a path that is a file.

    Returns:
        The folder as a path.

    Raises:
        RunFolderError: If `model_dir` (or a parent) is not a folder.
    """
    path = pathlib.Path(model_dir)
    if path.exists() and not path.is_dir():
        raise RunFolderError(f"model_dir {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as error:
        raise RunFolderError(f"model_dir {path}: cannot create it ({error})") from None
    except PermissionError:
        raise RunFolderError(f"model_dir {path}: permission denied") from None
    return path


class RunLock:
    """Exclusive lock of a run folder (a context manager).

    Args:
        model_dir: The run folder (must exist).
        purpose: What the holder does ("training", "exporting"), written into
            the lock file for the message of a second process.

    Raises:
        RunFolderError: On entering, if another live process holds the lock.
    """

    def __init__(self, model_dir: str | os.PathLike, purpose: str = "training"):
        self.path = pathlib.Path(model_dir) / LOCK_NAME
        self.purpose = purpose
        self._fh = None

    def _holder(self) -> dict:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def acquire(self) -> None:
        fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held open)
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            holder = self._holder()
            raise RunFolderError(
                f"model_dir {self.path.parent} is in use by process "
                f"{holder.get('pid', '?')} on {holder.get('host', '?')} "
                f"({holder.get('purpose', 'training')}); wait for it to finish "
                "or use another --model_dir"
            ) from None
        previous = self._holder()
        if previous.get("pid"):
            # The kernel dropped the flock of a dead holder: a killed run.
            logging.info(
                "Taking over the stale lock of process %s on %s (no longer running)",
                previous["pid"],
                previous.get("host", "?"),
            )
        fh.seek(0)
        fh.truncate()
        fh.write(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "purpose": self.purpose,
                }
            )
        )
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is None:
            return
        # Empty the file first: an empty lock file is a released lock.
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.flush()
        fcntl.flock(self._fh, fcntl.LOCK_UN)
        self._fh.close()
        self._fh = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def config_differences(saved: dict, wanted: dict) -> list[str]:
    """Fields outside `RESUMABLE_FIELDS` whose values differ.

    A field missing from one side (a config of another version) counts as
    different unless the other side holds None.
    """
    names = (set(saved) | set(wanted)) - RESUMABLE_FIELDS
    return sorted(n for n in names if saved.get(n) != wanted.get(n))


def check_resumable(model_dir: pathlib.Path, wanted: dict) -> None:
    """Refuses to resume a run trained with different networks or objective.

    Args:
        model_dir: The run folder.
        wanted: The new run's config as a dict.

    Raises:
        RunFolderError: Naming the differing fields, saved and new values,
            and what to do.
    """
    path = model_dir / CONFIG
    if not (model_dir / CHECKPOINTS).exists():
        return
    if not path.exists():
        if any((model_dir / CHECKPOINTS).glob("*.index")):
            # Without it nothing says which networks the checkpoints hold.
            raise RunFolderError(
                f"model_dir {model_dir} holds checkpoints but no {CONFIG}; use "
                "another --model_dir, or --overwrite to start over"
            )
        return
    try:
        saved = json.loads(path.read_text())
    except ValueError:
        raise RunFolderError(
            f"{path} is not valid JSON; use another --model_dir, or --overwrite "
            "to start over"
        ) from None
    differing = config_differences(saved, wanted)
    if differing:
        changes = ", ".join(
            f"{n} {saved.get(n, '(absent)')!r} -> {wanted.get(n, '(absent)')!r}"
            for n in differing
        )
        raise RunFolderError(
            f"model_dir {model_dir} holds a run with other settings ({changes}); "
            "use another --model_dir, or --overwrite to start over"
        )


def remove_leftovers(model_dir: pathlib.Path) -> list[pathlib.Path]:
    """Removes the temporary folders of interrupted checkpoint and export writes.

    Only call it while holding the run's lock: a live writer's temporary
    folders look the same.

    Returns:
        The removed paths.
    """
    export = model_dir / EXPORT
    set_aside = sorted(model_dir.glob(f"{EXPORT_OLD_PREFIX}*/{EXPORT}"))
    if not export.exists() and set_aside:
        # Killed between the two renames of an export's replacement: the
        # previous export is complete; the new one may not be.
        set_aside[0].replace(export)
        logging.info(
            "Put back the previous export %s (a replacement was cut short)", export
        )
    leftovers = [p for p in model_dir.glob(f"{EXPORT_TEMP_PREFIX}*") if p.is_dir()]
    for sub in (CHECKPOINTS, BEST):
        leftovers += (model_dir / sub).glob("*_temp")
    for path in leftovers:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if leftovers:
        logging.info(
            "Removed %d leftover(s) of an interrupted run: %s",
            len(leftovers),
            ", ".join(p.name for p in leftovers),
        )
    return leftovers


def start_over(model_dir: pathlib.Path) -> None:
    """Removes what a run wrote into `model_dir` (for ``--overwrite``).

    A marker file (`STARTING_OVER`) stands in the folder until everything is
    gone: a run killed in between leaves it, and `finish_start_over` at the
    next start completes the removal, so no part of the old run (its best
    weights and their score, its validated step) outlives the start-over.
    """
    marker = model_dir / STARTING_OVER
    marker.touch()
    for name in RUN_CONTENTS:
        path = model_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    marker.unlink()


def finish_start_over(model_dir: pathlib.Path) -> bool:
    """Completes a `start_over` that was interrupted; True if there was one."""
    if not (model_dir / STARTING_OVER).exists():
        return False
    logging.warning(
        "%s: an --overwrite was interrupted before the old run was removed; "
        "removing the rest of it now",
        model_dir,
    )
    start_over(model_dir)
    return True


def served_dai_model(run_dir: str | os.PathLike, network: str) -> pathlib.Path:
    """The ``.keras`` file of a NetE or NetM run that others should load.

    The best validated weights when the run validated, else the latest: the
    same weights as the run's serving SavedModel. NetM trains against, and
    the evaluation loads, this file.

    Args:
        run_dir: The run folder.
        network: ``"nete"`` or ``"netm"``.

    Returns:
        ``export/<network>_best.keras`` if it exists, else
        ``export/<network>.keras`` (which may not exist).
    """
    export = pathlib.Path(run_dir) / EXPORT
    best = export / DAI_BEST_MODEL_FILE.format(network=network)
    return best if best.is_file() else export / DAI_MODEL_FILE.format(network=network)


def read_history(
    run_dir: str | os.PathLike, *, skip_damaged: bool = False
) -> list[dict]:
    """The rows of a run's validation history (`HISTORY`), oldest first.

    Args:
        run_dir: The run folder.
        skip_damaged: Skip lines that are not JSON (a Dai run of an older
            release appended its rows and could be killed mid-line).

    Returns:
        The rows ([] without a history).
    """
    path = pathlib.Path(run_dir) / HISTORY
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if not line:
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if not skip_damaged:
                raise
    return rows


def record_validation(
    run_dir: str | os.PathLike, row: dict, *, skip_damaged: bool = False
) -> None:
    """Adds a validation row to `HISTORY`, written whole (beside, renamed).

    Rows of the row's step and later ones are dropped: they belong to an
    earlier session that stopped before its checkpoint, and the resumed run
    trains those steps again.
    """
    rows = [
        old
        for old in read_history(run_dir, skip_damaged=skip_damaged)
        if old["step"] < row["step"]
    ]
    path = pathlib.Path(run_dir) / HISTORY
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in [*rows, row]))
    tmp.replace(path)
