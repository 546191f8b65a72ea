"""Faults of a two-worker cluster: a missing peer and signals.

The workers, ports and logs are those of test_multiworker.py (real train.py
processes with a two-worker TF_CONFIG on 127.0.0.1); a file of its own so
that test workers can run it beside the others.
"""

import signal
import subprocess
import sys
import time

import pytest
from helpers import write_images
from test_multiworker import (
    TIMEOUT,
    command,
    environment,
    free_ports,
)

from wgimask.train import cluster

pytestmark = pytest.mark.slow


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def lone_worker(tmp_path, *extra):
    """Worker 0 of two, whose peer never starts; (process, peer port)."""
    write_images(tmp_path / "photos", count=4, size=(24, 32))
    ports = free_ports(2)
    argv = command(tmp_path / "photos", tmp_path / "run", *extra)
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(0, ports),
    )
    return process, ports


def test_a_worker_whose_peer_never_comes_stops_in_one_line(tmp_path):
    process, ports = lone_worker(tmp_path, "--peer_timeout=2")
    _, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 1, stderr[-2000:]
    assert last_line(stderr) == (
        f"train.py: worker 1 (127.0.0.1:{ports[1]}) did not start within 2 s "
        "(--peer_timeout); start every task TF_CONFIG names"
    )
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_signal_while_waiting_for_the_peers_is_one_line(tmp_path):
    process, ports = lone_worker(tmp_path)
    deadline = time.time() + TIMEOUT
    # Its own address answers once it waits for the peer.
    while not cluster.reachable(f"127.0.0.1:{ports[0]}") and time.time() < deadline:
        assert process.poll() is None, process.communicate()[1][-2000:]
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert last_line(stderr) == (
        "train.py: stopped by SIGTERM while waiting for the other workers "
        "(nothing was trained or written)"
    )


@pytest.mark.parametrize("index", [0, 1])
def test_a_stopped_tasks_line_is_its_last_output(index):
    """say_last: the line reaches stderr, what native code writes to file
    descriptor 2 afterwards (TensorFlow's note on the others leaving) does not;
    the chief first waits for its peers (here: none answers)."""
    script = (
        "import os\n"
        "from wgimask.train import cluster\n"
        "cluster.say_last('train.py: stopped')\n"
        "os.write(2, b'The tasks have crashed.\\n')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=environment(index, free_ports(2)),
        timeout=60,
        check=True,
    )
    # (TensorFlow's import writes its start-up notes before.)
    assert result.stderr.endswith("\ntrain.py: stopped\n")
    assert "crashed" not in result.stderr
