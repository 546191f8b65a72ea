"""A killed worker of a two-worker run, then SIGTERM to the chief of the
rerun: each time the workers stop with one line, and the last rerun resumes
and finishes.

The workers, ports and logs are those of test_multiworker.py; this test is a
file of its own so that test workers can run it beside that one.
"""

import pathlib
import signal
import tempfile
import time

import pytest
import tensorflow as tf
from helpers import write_images
from test_multiworker import TIMEOUT, command, read_log, start_workers, wait_all

pytestmark = pytest.mark.slow


def latest_step(tmp_path) -> int:
    saved = tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints"))
    return int(saved.rsplit("-", 1)[1]) if saved else 0


def test_killed_worker_resumes_from_the_last_checkpoint(tmp_path):
    write_images(tmp_path / "photos", count=4, size=(24, 32))
    argv = command(
        tmp_path / "photos",
        tmp_path / "run",
        "--mode=inpaint",  # two networks: a shorter trace, same resume path
        "--epochs=2",
        "--steps_per_epoch=40",
        "--checkpoint_every=2",
    )
    started = time.perf_counter()
    workers = start_workers(argv, tmp_path, "first")
    index = tmp_path / "run" / "checkpoints" / "checkpoint"
    deadline = time.time() + TIMEOUT
    while not index.exists() and time.time() < deadline:
        assert all(p.poll() is None for p in workers), read_log(tmp_path, "first", 0)
        time.sleep(0.2)
    assert index.exists(), read_log(tmp_path, "first", 0)
    killed_pid = workers[1].pid
    workers[1].send_signal(signal.SIGKILL)
    workers[1].wait()
    # The chief loses its peer: one line that names it, not a traceback or a
    # wait for ever (its collective fails, or its watch finds the port shut).
    workers[0].wait(timeout=60)
    assert workers[0].returncode == 1
    address = f"127.0.0.1:{workers[0].ports[1]}"
    assert read_log(tmp_path, "first", 0).strip().splitlines()[-1] == (
        f"train.py: worker 1 ({address}) is gone (its process ended or its machine "
        "is unreachable); rerun every worker to resume from the last checkpoint"
    )
    saved = tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints"))
    saved_step = int(saved.rsplit("-", 1)[1])
    assert 2 <= saved_step < 80

    # Resumed, then SIGTERM to the chief: every worker stops after the same
    # step, with a checkpoint of it and one line each.
    workers = start_workers(argv, tmp_path, "second")
    deadline = time.time() + TIMEOUT
    while latest_step(tmp_path) <= saved_step and time.time() < deadline:
        assert all(p.poll() is None for p in workers), read_log(tmp_path, "second", 0)
        time.sleep(0.1)
    workers[0].send_signal(signal.SIGTERM)
    for process in workers:
        process.wait(timeout=60)
    for worker in range(2):
        assert f"Resuming inpaint training at step {saved_step} of 80" in read_log(
            tmp_path, "second", worker
        )
    stopped = latest_step(tmp_path)
    assert saved_step < stopped < 80
    chief, other = (read_log(tmp_path, "second", i) for i in range(2))
    assert [p.returncode for p in workers] == [143, 143], chief[-2000:]
    assert chief.strip().splitlines()[-1] == (
        f"train.py: stopped by SIGTERM after step {stopped} (checkpoint of step "
        f"{stopped} written); rerun the same command to resume"
    )
    assert other.strip().splitlines()[-1] == (
        f"train.py: stopped with another worker (SIGTERM there) after step "
        f"{stopped} (checkpoint of step {stopped} written); rerun the same "
        "command to resume"
    )

    workers = start_workers(argv, tmp_path, "third")
    wait_all(workers, tmp_path, "third")
    print(
        f"kill, stop and resume with two workers: {time.perf_counter() - started:.1f} s"
    )
    for worker in range(2):
        assert f"Resuming inpaint training at step {stopped} of 80" in read_log(
            tmp_path, "third", worker
        )
    final = tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints"))
    assert final.endswith("-80")
    # The killed worker's temporary folder went with the rerun's start.
    leftovers = pathlib.Path(tempfile.gettempdir()).glob(
        f"wgimask-worker-{killed_pid}-*"
    )
    assert not list(leftovers)
    assert (tmp_path / "run" / "export" / "inpainter" / "saved_model.pb").exists()
