"""What a long command is doing, on stderr.

A `Progress` names the stages of the work (decoding, the mask, each
inpainting, the metrics, writing). A stage that is still running after
`DELAY` seconds is announced: on a terminal as a line that counts its steps
when the stage reports them (``[7/17]``) and ends with the seconds it took;
elsewhere (a log file, a pipe) as one line when it is announced, with no
step counts, so logs stay short. Stages that end sooner print nothing, so
small images stay quiet. The announcements come from a timer thread, so a
stage inside compiled code (a solver) is announced on time too.

Example:
    >>> progress = Progress("photo.png", stream=None)
    >>> with progress.stage("diffusion inpainting"):
    ...     pass
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import TextIO

#: Seconds a stage runs before it is announced.
DELAY = 1.0


class Progress:
    """Stage announcements of one item of work (an image) on a stream.

    Args:
        name: What the work is on, e.g. the image's file name; prefixes
            every line.
        stream: Where the lines go (default: ``sys.stderr`` when the
            Progress is made); None: nowhere.
        delay: Seconds before a running stage is announced (default
            `DELAY`).
    """

    def __init__(
        self,
        name: str,
        stream: TextIO | None | str = "stderr",
        delay: float | None = None,
    ):
        self.name = name
        # sys.stderr as it is now (tests and callers may have replaced it).
        self.stream = sys.stderr if stream == "stderr" else stream
        self.delay = DELAY if delay is None else delay
        self._lock = threading.Lock()
        self._stage: str | None = None
        self._shown = False
        self._count = ""
        self._terminal = bool(stream is not None and _isatty(stream))

    @contextlib.contextmanager
    def stage(self, text: str):
        """Runs the body as a stage named ``text``, announced if it is slow."""
        started = time.perf_counter()
        with self._lock:
            self._stage, self._shown, self._count = text, False, ""
        timer = threading.Timer(self.delay, self._announce)
        timer.daemon = True
        if self.stream is not None and self.delay <= 0:
            self._announce()  # at once, in this thread (repeatable in tests)
        elif self.stream is not None:
            timer.start()
        try:
            yield self
        finally:
            timer.cancel()
            with self._lock:
                if self._shown and self._terminal:
                    seconds = time.perf_counter() - started
                    self._write(f"\r{self._line()} {seconds:.1f} s\n")
                self._stage, self._shown = None, False

    def step(self, done: int, total: int) -> None:
        """Reports ``done`` of ``total`` steps of the running stage."""
        with self._lock:
            self._count = f" [{done}/{total}]"
            if self._shown and self._terminal:
                self._write(f"\r{self._line()}")

    def _line(self) -> str:
        return f"wgimask: {self.name}: {self._stage}...{self._count}"

    def _announce(self) -> None:
        with self._lock:
            if self._stage is None or self._shown:
                return
            self._shown = True
            self._write(f"\r{self._line()}" if self._terminal else self._line() + "\n")

    def _write(self, text: str) -> None:
        if self.stream is None:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            # A closed or broken stderr must not stop the work.
            self.stream = None


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
