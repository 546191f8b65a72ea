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
import socket
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


class ClusterConfigError(ValueError):
    """A ``TF_CONFIG`` that names no usable cluster role (one-line message)."""


def read_tf_config() -> dict:
    """``TF_CONFIG`` as a dict ({} when unset), checked before TensorFlow reads it.

    Raises:
        ClusterConfigError: For text that is not a JSON object, a cluster
            without a list of ``host:port`` addresses per task type, or a
            ``task`` whose type is not in the cluster or whose index is out
            of range.
    """
    text = os.environ.get("TF_CONFIG", "") or "{}"
    try:
        tf_config = json.loads(text)
    except ValueError as error:
        raise ClusterConfigError(f"TF_CONFIG is not valid JSON ({error})") from None
    if not isinstance(tf_config, dict):
        raise ClusterConfigError("TF_CONFIG must be a JSON object")
    cluster = tf_config.get("cluster", {})
    if not cluster:
        return tf_config
    if not isinstance(cluster, dict) or not all(
        isinstance(v, list) and all(isinstance(a, str) for a in v)
        for v in cluster.values()
    ):
        raise ClusterConfigError(
            'TF_CONFIG "cluster" must map task types to lists of "host:port"'
        )
    task = tf_config.get("task")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ClusterConfigError(
            'TF_CONFIG names a cluster but no "task" {"type": ..., "index": ...} '
            "for this process"
        )
    kind, index = task["type"], task["index"]
    if kind not in cluster:
        raise ClusterConfigError(
            f"TF_CONFIG task type {kind!r} is not in the cluster ({', '.join(cluster)})"
        )
    if not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
        raise ClusterConfigError(
            f"TF_CONFIG task index {index!r} is out of range: the cluster has "
            f"{len(cluster[kind])} {kind} task(s)"
        )
    return tf_config


def check_global_batch(batch_size: int) -> None:
    """Refuses a global batch that the ``TF_CONFIG`` workers cannot share.

    Checked before the strategy exists: a worker refused later would leave
    its peers waiting for it.

    Raises:
        ClusterConfigError: If `batch_size` is not a multiple of the workers.
    """
    cluster = read_tf_config().get("cluster", {})
    workers = sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))
    if workers > 1 and batch_size % workers:
        raise ClusterConfigError(
            f"--batch_size {batch_size} is the global batch: it must be a "
            f"multiple of the {workers} workers TF_CONFIG names"
        )


def check_own_port(tf_config: dict) -> None:
    """Refuses a task whose own port is taken, naming it (TensorFlow's server
    would fail with a message that names no port, and leave its peers waiting).

    Raises:
        ClusterConfigError: If this task's port is in use on this machine.
    """
    task = tf_config["task"]
    address = tf_config["cluster"][task["type"]][task["index"]]
    port = address.rpartition(":")[2]
    if not port.isdigit():
        raise ClusterConfigError(f"TF_CONFIG address {address!r} has no port")
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("", int(port)))
        except OSError as error:
            raise ClusterConfigError(
                f"port {port} of this task ({task['type']} {task['index']}, "
                f"{address}) cannot be used: {error.strerror or error}"
            ) from None


def default_strategy() -> tf.distribute.Strategy:
    """The strategy for this machine.

    `MultiWorkerMirroredStrategy` when ``TF_CONFIG`` names several workers,
    `MirroredStrategy` over all visible GPUs when there are any, else the
    default (single-device) strategy.

    Returns:
        A `tf.distribute.Strategy`.

    Raises:
        ClusterConfigError: For a bad ``TF_CONFIG`` (`read_tf_config`).
    """
    tf_config = read_tf_config()
    if len(tf_config.get("cluster", {}).get("worker", [])) > 1:
        check_own_port(tf_config)
        return tf.distribute.MultiWorkerMirroredStrategy()
    if tf.config.list_logical_devices("GPU"):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()
