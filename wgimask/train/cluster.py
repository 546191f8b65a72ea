"""Where a training run executes: its strategy, this process's role, temp folders.

`default_strategy` picks the `tf.distribute` strategy for the machine or the
``TF_CONFIG`` cluster, `cluster_role` says whether this process is the chief
(which writes the run folder), and non-chief workers write into temporary
folders with `WORKER_TEMP_PREFIX` that `remove_dead_worker_folders` clears
after killed workers.

A cluster waits for its workers inside TensorFlow's C++ code, where Python
sees no signal and no timer runs: `default_strategy` therefore lets the
workers meet first (`rendezvous`), and gives up after ``peer_timeout``
seconds with one line that names the tasks that never came; `watch_peers`
ends a worker whose peer's process is gone during training instead of
leaving it in a collective that never completes.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time

import tensorflow as tf

# Temporary folder of a non-chief worker: prefix, process id, random part.
WORKER_TEMP_PREFIX = "wgimask-worker-"
#: Seconds a worker waits for the others to start (``--peer_timeout``).
DEFAULT_PEER_TIMEOUT = 300.0
# Seconds between two looks at the peers' addresses.
_PROBE_INTERVAL = 1.0
# Failed looks in a row after which a peer that was there counts as gone.
_PROBE_MISSES = 3


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


class WaitInterruptedError(Exception):
    """SIGINT or SIGTERM arrived while this worker waited for the others.

    Attributes:
        signum: The signal.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(
            f"stopped by {signal.Signals(signum).name} while waiting for the "
            "other workers (nothing was trained or written)"
        )


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


def listen_on_own_port(tf_config: dict) -> socket.socket:
    """A listening socket on this task's own port, naming the port if it is
    taken (TensorFlow's server would fail with a message that names no port,
    and leave its peers waiting).

    Returns:
        The socket (non-blocking); closing it frees the port for
        TensorFlow's server.

    Raises:
        ClusterConfigError: If this task's port is in use on this machine.
    """
    task = tf_config["task"]
    address = tf_config["cluster"][task["type"]][task["index"]]
    port = address.rpartition(":")[2]
    if not port.isdigit():
        raise ClusterConfigError(f"TF_CONFIG address {address!r} has no port")
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("", int(port)))
        listener.listen(16)
    except OSError as error:
        listener.close()
        raise ClusterConfigError(
            f"port {port} of this task ({task['type']} {task['index']}, "
            f"{address}) cannot be used: {error.strerror or error}"
        ) from None
    listener.setblocking(False)
    return listener


def peer_addresses(tf_config: dict) -> list[tuple[str, str]]:
    """(name, "host:port") of every task of the cluster but this one."""
    task = tf_config["task"]
    return [
        (f"{kind} {index}", address)
        for kind, addresses in tf_config["cluster"].items()
        for index, address in enumerate(addresses)
        if (kind, index) != (task["type"], task["index"])
    ]


def reachable(address: str, timeout: float = 1.0) -> bool:
    """Whether a TCP connection to "host:port" opens (the task's server is up)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _is_cluster_chief(tf_config: dict) -> bool:
    task, cluster = tf_config["task"], tf_config["cluster"]
    chief = ("chief", 0) if "chief" in cluster else ("worker", 0)
    return (task["type"], task["index"]) == chief


def linger_for_peers(timeout: float = 10.0, interval: float = 0.1) -> None:
    """The chief waits until the other tasks of its cluster have ended.

    TensorFlow's coordination service runs in the chief; a task still
    shutting down when the chief's process is gone logs a gRPC error after
    its last line. So a chief that stops (for a signal, with the others)
    leaves last: it waits until no other task's port answers, for at most
    ``timeout`` seconds. Does nothing outside a ``TF_CONFIG`` cluster or in
    another task.
    """
    tf_config = read_tf_config()
    if not tf_config.get("cluster") or not _is_cluster_chief(tf_config):
        return
    peers = [address for _, address in peer_addresses(tf_config)]
    deadline = time.monotonic() + timeout
    while peers and time.monotonic() < deadline:
        peers = [address for address in peers if reachable(address, timeout=0.2)]
        if peers:
            time.sleep(interval)


def say_last(line: str) -> None:
    """Writes ``line`` to stderr as the process's last output, then lets the
    cluster's tasks leave in order; for a task that stops with the others.

    A task's TensorFlow runtime logs its peers' leaving: the chief's
    coordination service reports every task that ends as "crashed", at a
    moment of its own (under load, after the chief's own stop line). What
    the runtime writes from here on is about that leaving alone, so the
    native stderr goes to the null device and ``line`` is written to the
    real one: the chief first waits for the others (`linger_for_peers`),
    then writes; another task writes at once, then leaves. Outside a
    ``TF_CONFIG`` cluster, ``line`` is printed and nothing else changes.
    """
    sys.stdout.flush()
    tf_config = read_tf_config()
    if not tf_config.get("cluster"):
        print(line, file=sys.stderr, flush=True)
        return
    sys.stderr.flush()
    stderr = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)
    linger_for_peers()
    os.write(stderr, f"{line}\n".encode())
    os.close(stderr)


def _end(message: str, status: int) -> None:
    """One line on stderr, then the process ends at once.

    ``os._exit``: the main thread may be inside TensorFlow's C++ waits,
    which neither ``sys.exit`` nor interpreter shutdown can end.
    """
    sys.stdout.flush()
    print(f"train.py: {message}", file=sys.stderr, flush=True)
    os._exit(status)


def _missing(peers) -> str:
    return ", ".join(f"{name} ({address})" for name, address in peers)


def rendezvous(tf_config: dict, timeout: float, interval: float = 0.5) -> None:
    """Waits until every other task of the cluster answers on its address.

    TensorFlow's own wait for the workers runs inside a C++ call that holds
    the interpreter: no signal handler and no timer runs while it waits, and
    it waits an hour. So the workers meet here first, in Python: each
    listens on its own port (which TensorFlow's server takes over right
    after) and connects to the others' until all answer.

    Raises:
        ClusterConfigError: If this task's port is taken (`listen_on_own_port`),
            or, after ``timeout`` seconds, naming the tasks that never
            answered.
        WaitInterruptedError: At SIGINT or SIGTERM while waiting (when called
            from the main thread, where signal handlers live).
    """
    if threading.current_thread() is not threading.main_thread():
        _meet(tf_config, timeout, interval)
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {each: signal.getsignal(each) for each in signals}

    def interrupted(signum, frame):
        raise WaitInterruptedError(signum)

    for each in signals:
        signal.signal(each, interrupted)
    try:
        _meet(tf_config, timeout, interval)
    finally:
        for each, handler in previous.items():
            signal.signal(each, handler)


def _answer(listener: socket.socket) -> None:
    """Accepts and closes at once every pending look of the other tasks."""
    with contextlib.suppress(BlockingIOError, InterruptedError):
        while True:
            listener.accept()[0].close()


def _meet(tf_config: dict, timeout: float, interval: float) -> None:
    """`rendezvous` without the signal handlers."""
    with listen_on_own_port(tf_config) as listener:
        deadline = time.monotonic() + timeout
        absent = peer_addresses(tf_config)
        while True:
            _answer(listener)
            absent = [(n, a) for n, a in absent if not reachable(a, timeout=interval)]
            if not absent:
                break
            if time.monotonic() > deadline:
                raise ClusterConfigError(
                    f"{_missing(absent)} did not start within {timeout:g} s "
                    "(--peer_timeout); start every task TF_CONFIG names"
                )
            time.sleep(interval)
        # A peer that finished waiting for us first may still look once
        # more before its own server starts: answer for a moment longer.
        until = time.monotonic() + 2 * interval
        while time.monotonic() < until:
            _answer(listener)
            time.sleep(0.05)


def lost_peer(error: Exception) -> str | None:
    """The one-line message for a collective that lost a worker, or None.

    A worker's process that ends in the middle of a step makes the others'
    collectives fail with `tf.errors.UnavailableError` ("Connection reset
    by peer"), naming the task.
    """
    if not isinstance(error, tf.errors.UnavailableError):
        return None
    tf_config = read_tf_config()
    if not tf_config.get("cluster"):
        return None
    found = re.search(r"/job:(\w+)/replica:\d+/task:(\d+)", str(error))
    peers = dict(peer_addresses(tf_config))
    name = f"{found[1]} {found[2]}" if found else None
    who = f"{name} ({peers[name]})" if name in peers else "another worker"
    return (
        f"{who} is gone (its process ended or its machine is unreachable); "
        "rerun every worker to resume from the last checkpoint"
    )


@contextlib.contextmanager
def watch_peers(strategy: tf.distribute.Strategy):
    """Ends this worker with one line when another worker's process is gone.

    A worker whose peer died waits in the next collective for ever (or until
    TensorFlow's heartbeat gives up, minutes later, with a traceback); a
    thread looks at the peers' addresses every second and ends the process
    after `_PROBE_MISSES` failed looks in a row. A single process, or a
    strategy without a cluster, watches nothing.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    tf_config = read_tf_config()
    if resolver is None or not tf_config.get("cluster"):
        yield
        return
    peers = peer_addresses(tf_config)
    done = threading.Event()

    def look():
        misses = dict.fromkeys(peers, 0)
        while not done.wait(_PROBE_INTERVAL):
            for peer in peers:
                misses[peer] = 0 if reachable(peer[1]) else misses[peer] + 1
            gone = [peer for peer, count in misses.items() if count >= _PROBE_MISSES]
            if gone and not done.is_set():
                _end(
                    f"{_missing(gone)} is gone (its process ended or its "
                    "machine is unreachable); rerun every worker to resume from "
                    "the last checkpoint",
                    1,
                )

    thread = threading.Thread(target=look, name="peer-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()


def default_strategy(
    peer_timeout: float = DEFAULT_PEER_TIMEOUT,
) -> tf.distribute.Strategy:
    """The strategy for this machine.

    `MultiWorkerMirroredStrategy` when ``TF_CONFIG`` names several workers,
    `MirroredStrategy` over all visible GPUs when there are any, else the
    default (single-device) strategy.

    Args:
        peer_timeout: Seconds a worker waits for the others to start
            (`rendezvous`).

    Returns:
        A `tf.distribute.Strategy`.

    Raises:
        ClusterConfigError: For a bad ``TF_CONFIG`` (`read_tf_config`), a
            ``peer_timeout`` that is not > 0, or tasks that did not start
            within it.
    """
    if not peer_timeout > 0:
        raise ClusterConfigError(f"--peer_timeout must be > 0, got {peer_timeout!r}")
    tf_config = read_tf_config()
    if len(tf_config.get("cluster", {}).get("worker", [])) > 1:
        rendezvous(tf_config, peer_timeout)
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        if threading.current_thread() is threading.main_thread():
            # TensorFlow's coordination service installs a SIGTERM handler
            # that only records the signal (for its preemption notices, not
            # used here): put the default back, so that SIGTERM before the
            # training loop's own handler ends the process instead of
            # nothing happening.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        return strategy
    if tf.config.list_logical_devices("GPU"):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()
