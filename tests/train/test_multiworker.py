"""Two train.py workers on 127.0.0.1 under MultiWorkerMirroredStrategy.

Each test starts real worker processes with a two-worker TF_CONFIG and one
shared --model_dir, as on two machines, with the loopback network between
them. Tiny networks and a few steps keep them short.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import write_images

import wgimask  # noqa: F401 (registers the layers for load_model)

ROOT = pathlib.Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
# Bounds every process: a worker whose peer is gone may wait for it.
TIMEOUT = 240


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def command(data_dir, model_dir, *extra):
    return [
        sys.executable,
        str(ROOT / "train.py"),
        f"--data_dir={data_dir}",
        f"--model_dir={model_dir}",
        "--density=0.1",
        "--image_size=16",
        "--batch_size=4",
        "--model_size=tiny",
        "--validation_fraction=0.3",
        *extra,
    ]


def environment(index=None, ports=()):
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "TF_NUM_INTRAOP_THREADS": "1",
        "TF_NUM_INTEROP_THREADS": "1",
    }
    env.pop("TF_CONFIG", None)
    if index is not None:
        env["TF_CONFIG"] = json.dumps(
            {
                "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                "task": {"type": "worker", "index": index},
            }
        )
    return env


def start_workers(argv, log_dir, tag):
    ports = free_ports(2)
    processes = []
    for index in range(2):
        log = open(log_dir / f"{tag}-worker{index}.log", "w")  # noqa: SIM115
        processes.append(
            subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment(index, ports),
            )
        )
        processes[-1].ports = ports  # the cluster's, for messages that name them
    return processes


def read_log(log_dir, tag, index):
    return (log_dir / f"{tag}-worker{index}.log").read_text()


def wait_all(processes, log_dir, tag):
    deadline = time.time() + TIMEOUT
    for index, process in enumerate(processes):
        try:
            process.wait(timeout=max(1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            for p in processes:
                p.kill()
            pytest.fail(f"worker {index} timed out:\n{read_log(log_dir, tag, index)}")
    for index, process in enumerate(processes):
        assert process.returncode == 0, read_log(log_dir, tag, index)[-3000:]


def exported_weights(model_dir):
    weights = []
    for name in ("generator", "mask_generator", "critic"):
        model = keras.models.load_model(model_dir / "export" / f"{name}.keras")
        weights += [np.asarray(w) for w in model.weights]
    return weights


def logged_losses(model_dir):
    """The training losses the run wrote to TensorBoard, by (tag, step)."""
    values = {}
    for path in (model_dir / "logs").glob("events.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.tag.endswith("_loss") and value.tag.startswith("train/"):
                    values[value.tag, event.step] = float(tf.make_ndarray(value.tensor))
    return values


# train.py whose chief sleeps `delay` seconds before it exports.
SLOW_EXPORT = textwrap.dedent(
    """
    import runpy, sys, time
    from wgimask.train import loop
    real = loop.export_models
    def slow(*args, **kwargs):
        time.sleep({delay})
        print(f"export starts at {{time.time()}}", flush=True)
        return real(*args, **kwargs)
    loop.export_models = slow
    sys.argv = [{script!r}, *sys.argv[1:]]
    runpy.run_path({script!r}, run_name="__main__")
    """
)


def end_times(processes) -> list[float]:
    """When each process ended (time.time()), polled every 0.1 s."""
    ended = [None] * len(processes)
    deadline = time.time() + TIMEOUT
    while None in ended and time.time() < deadline:
        for i, process in enumerate(processes):
            if ended[i] is None and process.poll() is not None:
                ended[i] = time.time()
        time.sleep(0.1)
    return ended


def test_two_workers_equal_one_process_with_the_same_global_batch(tmp_path):
    write_images(tmp_path / "photos", count=4, size=(24, 32))
    steps = ["--epochs=1", "--steps_per_epoch=3", "--checkpoint_every=2"]
    started = time.perf_counter()
    # The chief exports 3 s late: no worker may leave before it has exported
    # (a worker that left at its last step made a 20 s export end in "The
    # tasks have crashed" from the chief's coordination service).
    script = SLOW_EXPORT.format(delay=3, script=str(ROOT / "train.py"))
    argv = command(tmp_path / "photos", tmp_path / "two", *steps)
    workers = start_workers([sys.executable, "-c", script, *argv[2:]], tmp_path, "two")
    single = subprocess.run(
        command(tmp_path / "photos", tmp_path / "one", *steps),
        capture_output=True,
        text=True,
        env=environment(),
        timeout=TIMEOUT,
    )
    ended = end_times(workers)
    wait_all(workers, tmp_path, "two")
    print(f"two workers and one process: {time.perf_counter() - started:.1f} s")
    chief_log = read_log(tmp_path, "two", 0)
    export_started = float(chief_log.split("export starts at ")[1].split()[0])
    assert ended[1] > export_started  # worker 1 waited for the chief's export
    assert "have crashed" not in chief_log + read_log(tmp_path, "two", 1)
    assert single.returncode == 0, single.stderr[-3000:]
    chief_log = read_log(tmp_path, "two", 0)
    assert "2 worker(s), 2 replica(s) in sync" in chief_log
    assert "(writes the run folder)" in chief_log
    assert "(writes nothing there)" in read_log(tmp_path, "two", 1)

    two, one = exported_weights(tmp_path / "two"), exported_weights(tmp_path / "one")
    fresh = keras.models.load_model(tmp_path / "one" / "export" / "generator.keras")
    assert len(two) == len(one)
    worst = max(float(np.abs(a - b).max()) for a, b in zip(two, one, strict=True))
    print("max exported weight difference, two workers vs one process:", worst)
    assert worst <= 1e-4
    # Adam hides a gradient scale in the weights; the losses would not (each
    # worker must average over its half of the global batch, not all of it).
    losses_two, losses_one = (
        logged_losses(tmp_path / "two"),
        logged_losses(tmp_path / "one"),
    )
    assert sorted(losses_two) == sorted(losses_one) and losses_one
    for key, value in losses_one.items():
        assert abs(losses_two[key] - value) <= 1e-5 * max(1.0, abs(value)), key
    # Only the chief wrote: the folder holds one run's files and no leftovers.
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(
        p.name for p in (tmp_path / "one").iterdir()
    )
    assert tf.train.latest_checkpoint(str(tmp_path / "two" / "checkpoints")).endswith(
        "-3"
    )
    assert fresh is not None
