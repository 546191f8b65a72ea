"""Description of the CPU a computation runs on (no TensorFlow needed)."""

from __future__ import annotations

import os
import platform


def _cpu_model() -> str:
    """CPU model name from /proc/cpuinfo, else from the platform module."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def usable_cpu_count() -> int:
    """Number of CPUs this process may run on (its affinity set)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not available on every platform
        return os.cpu_count() or 1


def cpu_description() -> str:
    """One line naming the CPU model and the number of usable threads.

    Returns:
        For example ``"AMD EPYC, 2 usable threads (2 logical CPUs)"``.
    """
    logical = os.cpu_count() or 1
    return (
        f"{_cpu_model()}, {usable_cpu_count()} usable threads ({logical} logical CPUs)"
    )
