"""wgimask.progress: slow stages are announced on stderr, quick ones are not."""

import io
import time

from wgimask.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _wait_for(stream, text):
    for _ in range(200):
        if text in stream.getvalue():
            return
        time.sleep(0.01)


def test_a_slow_stage_is_one_line_in_a_log():
    log = io.StringIO()
    progress = Progress("photo.png", stream=log, delay=0.0)
    with progress.stage("densification mask"):
        _wait_for(log, "densification")
        progress.step(3, 17)  # no counts in a log
    assert log.getvalue() == "wgimask: photo.png: densification mask...\n"


def test_a_terminal_counts_steps_and_ends_with_the_seconds():
    terminal = _Terminal()
    progress = Progress("photo.png", stream=terminal, delay=0.0)
    with progress.stage("learned inpainting"):
        _wait_for(terminal, "inpainting")
        progress.step(63, 126)
    text = terminal.getvalue()
    assert "\rwgimask: photo.png: learned inpainting... [63/126]" in text
    assert text.endswith(" s\n") and "[63/126] " in text


def test_quick_stages_print_nothing():
    log = io.StringIO()
    progress = Progress("photo.png", stream=log, delay=5.0)
    with progress.stage("reading"):
        progress.step(1, 2)
    assert log.getvalue() == ""


def test_a_closed_stream_does_not_stop_the_work():
    log = io.StringIO()
    log.close()
    progress = Progress("photo.png", stream=log, delay=0.0)
    with progress.stage("writing"):
        time.sleep(0.05)
    assert progress.stream is None
