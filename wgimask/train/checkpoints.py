"""Finding the checkpoint to restore: the newest one that reads back whole.

`tf.train.latest_checkpoint` trusts the folder's ``checkpoint`` state file:
without it (deleted, or a copy that lost it) a run would start again at step
0 over its own checkpoints, and a checkpoint whose ``.index`` or ``.data``
file was cut short (a full disk, a crash of the file system) ends in a
traceback deep in TensorFlow. `latest_intact` reads the candidates newest
first, from the state file and from the ``ckpt-N.index`` files themselves,
and returns the first one whose every tensor reads back, naming on stderr
(absl's log) each one it had to skip.
"""

from __future__ import annotations

import pathlib
import re

import tensorflow as tf
from absl import logging

_NUMBERED = re.compile(r"^(?P<prefix>.+-(?P<number>[0-9]+))\.index$")


def candidates(folder: pathlib.Path) -> list[str]:
    """Checkpoint prefixes in `folder`, newest first (the state file's first)."""
    folder = pathlib.Path(folder)
    found: dict[str, int] = {}
    for path in folder.glob("*.index"):
        match = _NUMBERED.match(path.name)
        if match:
            found[str(folder / match.group("prefix"))] = int(match.group("number"))
    ordered = sorted(found, key=found.get, reverse=True)
    listed = tf.train.latest_checkpoint(str(folder)) if folder.is_dir() else None
    if listed is not None and listed in found:
        ordered.remove(listed)
        ordered.insert(0, listed)
    return ordered


def readable(prefix: str) -> str | None:
    """Why the checkpoint at `prefix` does not read back whole (None: it does)."""
    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except (tf.errors.OpError, ValueError, OSError, IndexError, RuntimeError) as error:
        # IndexError: "Read less bytes than requested" from a cut .data file.
        first = str(error).strip().splitlines()
        return first[0] if first else type(error).__name__
    return None


def latest_intact(folder: pathlib.Path) -> str | None:
    """The newest checkpoint of `folder` that reads back whole, or None."""
    for prefix in candidates(folder):
        problem = readable(prefix)
        if problem is None:
            return prefix
        logging.warning(
            "Skipping checkpoint %s: it does not read back (%s)", prefix, problem
        )
    return None
