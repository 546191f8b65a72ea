"""Stopping a training run cleanly on SIGINT or SIGTERM.

Every training loop (the mask GAN's `wgimask.train.loop`, Dai's
`wgimask.train.dai`) asks `stop_requests` after each step whether a signal
came, saves that step's checkpoint and raises `TrainingInterruptedError`;
``train.py`` prints its one line and exits as a shell reports the signal.
"""

from __future__ import annotations

import contextlib
import signal
import threading


class TrainingInterruptedError(Exception):
    """Training stopped by SIGINT or SIGTERM after a checkpoint of its step.

    Attributes:
        step: The last step trained and checkpointed (by all workers of a
            cluster together).
        signum: The signal (``here`` False: the one another worker got).
    """

    def __init__(self, step: int, signum: int, here: bool = True):
        name = signal.Signals(signum).name
        cause = f"by {name}" if here else f"with another worker ({name} there)"
        if step == 0:
            message = (
                f"stopped {cause} before the first step (nothing trained); "
                "rerun the same command to start"
            )
        else:
            message = (
                f"stopped {cause} after step {step} (checkpoint of step {step} "
                "written); rerun the same command to resume"
            )
        super().__init__(message)
        self.step, self.signum = step, signum


@contextlib.contextmanager
def stop_requests():
    """SIGINT and SIGTERM ask a training loop to stop after the current step.

    Yields a list that holds the signal once one arrived. A second signal
    stops at once (the default handlers are back by then).
    """
    requested: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield requested  # handlers can only be set in the main thread
        return

    def request(signum, frame):
        requested.append(signum)
        for each in (signal.SIGINT, signal.SIGTERM):
            signal.signal(each, previous[each])

    previous = {
        each: signal.getsignal(each) for each in (signal.SIGINT, signal.SIGTERM)
    }
    for each in previous:
        signal.signal(each, request)
    try:
        yield requested
    finally:
        for each, handler in previous.items():
            signal.signal(each, handler)
