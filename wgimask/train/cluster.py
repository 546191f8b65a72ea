"""Where a training run executes: its strategy, this process's role, temp folders.

`default_strategy` picks the `tf.distribute` strategy for the machine or the
``TF_CONFIG`` cluster, `cluster_role` says whether this process is the chief
(which writes the run folder), and non-chief workers write into temporary
folders with `WORKER_TEMP_PREFIX` that `remove_dead_worker_folders` clears
after killed workers.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile

import tensorflow as tf

# Temporary folder of a non-chief worker: prefix, process id, random part.
WORKER_TEMP_PREFIX = "wgimask-worker-"


def remove_dead_worker_folders() -> None:
    """Removes the temporary folders of killed workers of this machine."""
    for folder in pathlib.Path(tempfile.gettempdir()).glob(f"{WORKER_TEMP_PREFIX}*"):
        pid = folder.name[len(WORKER_TEMP_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:
            pass  # alive, another user's


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
