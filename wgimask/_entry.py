"""Shared start-up of the entry points (wgimask, train.py, evaluate.py).

* `import_tensorflow_quietly` imports TensorFlow and Keras without their
  start-up log block (oneDNN notice, CPU-feature notice, "Could not find cuda
  drivers" on machines without a GPU), while every other line they print, real
  errors included, still reaches stderr.
* `benign_stderr_dropped` does the same for any block of native code that
  logs to file descriptor 2 (LiteRT's XNNPACK notice).
* `exit_at_once` ends a command without TensorFlow's slow interpreter
  teardown.
* `help_requested` / `print_help` give ``--help`` that lists the command's own
  flags with their defaults (absl's own help lists the flags of the main
  module only, which for a console script is the launcher, not ours).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading

# Informational lines TensorFlow's C++ runtime writes to stderr while it loads,
# before its log level applies (TF_CPP_MIN_LOG_LEVEL does not reach them), and
# LiteRT's notice when its first interpreter takes the XNNPACK delegate.
BENIGN_STARTUP_LINES = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called"
    r"|port\.cc:\d+\] oneDNN custom operations are on"
    r"|cudart_stub\.cc:\d+\] Could not find cuda drivers"
    r"|cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized"
    r"|^To enable the following instructions:.*rebuild TensorFlow"
    r"|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|computation_placer\.cc:\d+\] computation placer already registered"
    r"|TF-TRT Warning: Could not find TensorRT"
    r"|cuda_executor\.cc:\d+\] .*NUMA node"
    r"|^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.$"
)


# TensorFlow's CUDA build reports a failed driver call on machines with no
# NVIDIA driver at all; only there is it noise (elsewhere it is a real fault).
NO_DRIVER_LINES = re.compile(r"failed call to cuInit")


def _benign(line: str) -> bool:
    if BENIGN_STARTUP_LINES.search(line):
        return True
    return bool(NO_DRIVER_LINES.search(line)) and not os.path.exists("/dev/nvidiactl")


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow and Keras, dropping only their benign start-up lines.

    Safe to call more than once; imports nothing once TensorFlow is imported.
    Any other output on stderr during the import is passed through, and
    TensorFlow's own Python INFO log lines are dropped from then on (see
    `_quiet_tensorflow_logging`).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # wgimask's oneDNN default (see wgimask/__init__.py) must be set first.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    if "tensorflow" not in sys.modules:
        with _matplotlib_hidden():
            _import_filtering_stderr()
    _quiet_tensorflow_logging()


@contextlib.contextmanager
def _matplotlib_hidden():
    """Hides matplotlib from the imports inside the ``with`` block.

    Keras imports ``matplotlib.pyplot`` while it loads, for its image-gallery
    plots, if matplotlib is installed; that is 0.5-0.6 s of every entry
    point's start-up (``python -X importtime``), and no entry point uses
    Keras's plots (evaluate.py draws its figures with matplotlib directly,
    imported normally afterwards). Keras catches the ImportError and leaves
    its plots without matplotlib. A module already imported is not hidden.
    """
    names = [n for n in ("matplotlib", "matplotlib.pyplot") if n not in sys.modules]
    for name in names:
        sys.modules[name] = None  # makes ``import name`` raise ImportError
    try:
        yield
    finally:
        for name in names:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


def _import_filtering_stderr() -> None:
    """Imports Keras and TensorFlow with the benign lines of stderr dropped."""
    with benign_stderr_dropped():
        import keras  # noqa: F401
        import tensorflow as tf

        # The device scan prints its own block on first use; do it here.
        tf.config.list_physical_devices("GPU")


@contextlib.contextmanager
def benign_stderr_dropped():
    """Within the block, lines written to file descriptor 2 that match
    `BENIGN_STARTUP_LINES` are dropped; the others reach stderr after it.

    For native libraries that log at start-up (TensorFlow's import, LiteRT's
    first interpreter allocation) below the level where Python could filter.
    Without a real stderr (some notebooks) nothing is filtered.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    read_end, write_end = os.pipe()
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            chunk = os.read(read_end, 65536)
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        reader.join(timeout=5)
        os.close(read_end)
        text = b"".join(chunks).decode(errors="replace")
        kept = [
            line for line in text.splitlines() if line.strip() and not _benign(line)
        ]
        if kept:
            print("\n".join(kept), file=sys.stderr, flush=True)


# TensorFlow's package folder, set once it is imported (`_drop_tensorflow_info`).
_TENSORFLOW_PACKAGE = ""


def _quiet_tensorflow_logging() -> None:
    """Drops TensorFlow's Python INFO lines; its warnings and errors still show.

    They are notes of its own (SavedModel writing: "Sharding callback
    duration", "Writing fingerprint", input renames), some through absl's
    logger, which train.py sets to INFO for its own progress.
    """
    import logging

    from absl import logging as absl_logging

    global _TENSORFLOW_PACKAGE
    _TENSORFLOW_PACKAGE = os.path.dirname(sys.modules["tensorflow"].__file__) + os.sep
    logging.getLogger("tensorflow").setLevel(logging.WARNING)
    # addFilter keeps one copy of the same filter, however often this runs.
    absl_logging.get_absl_logger().addFilter(_drop_tensorflow_info)


def _drop_tensorflow_info(record) -> bool:
    """A logging filter: False for INFO (and lower) records from TensorFlow."""
    import logging

    if record.levelno > logging.INFO or not _TENSORFLOW_PACKAGE:
        return True
    return not (record.pathname or "").startswith(_TENSORFLOW_PACKAGE)


def help_requested(argv: list[str]) -> bool:
    """Whether the command line asks for help."""
    return any(a in ("-h", "--help", "-?", "--helpshort") for a in argv[1:])


def print_help(doc: str, flag_values) -> None:
    """Prints a usage text and every flag of `flag_values` with help and default."""
    print(doc.strip() + "\n\nflags:")
    for name in sorted(flag_values):
        flag = flag_values[name]
        kind = "--[no]" if flag.flag_type() == "bool" else "--"
        default = flag.default_as_str or "None"
        print(f"  {kind}{name}: {flag.help}\n    (default: {default})")


def output_dir_problem(path) -> str | None:
    """Creates an output folder; returns why it cannot be used, or None.

    The message names the folder and the cause (a file in the way, no write
    permission, a read-only file system), for a one-line error.
    """
    import pathlib

    path = pathlib.Path(path)
    if path.exists() and not path.is_dir():
        return f"{path} is a file, not a folder"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return f"{path} cannot be created: {error.strerror or error}"
    try:
        probe = path / f".wgimask-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        return f"{path} is not writable: {error.strerror or error}"
    return None


def exit_at_once(run) -> None:
    """Calls ``run()``, then ends the process without the interpreter's teardown.

    With TensorFlow loaded, the normal exit (module and thread-pool
    teardown) takes 0.8-1.3 s after the work is done, on the 2-core
    development CPU. For a console command whose files are written and
    closed, that is pure waiting: stdout and stderr are flushed, then the
    process ends with ``run``'s exit status (a string status is printed to
    stderr and gives 1, as ``sys.exit`` does; a closed stdout pipe gives 1
    quietly). An exception still ends the
    process the normal way, with its traceback. Not for in-process use
    (tests call ``run`` itself).
    """
    try:
        run()
        code = 0
    except SystemExit as error:
        code = error.code
    except BrokenPipeError:
        # The reader of stdout went away (``wgimask ... | head``): nothing
        # left to tell it, and no traceback.
        code = 1
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        # A closed pipe (``wgimask ... | head``) must not stop the exit.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def run_script(main) -> None:
    """`absl.app.run` for a script whose flags are defined at module level.

    ``--help`` prints the script's docstring and its own flags with their
    defaults, then exits 0 (absl's own help exits 1).
    """
    from absl import app

    if help_requested(sys.argv):
        app.usage(shorthelp=True, writeto_stdout=True, exitcode=0)
    app.run(main)
