"""What CPU a benchmark ran on, read from /proc/cpuinfo (standard library only, no torch).

Every benchmark prints the machine beside its numbers; this is the one place that reads it.
Where /proc/cpuinfo does not exist (macOS, Windows) the model falls back to ``platform`` and
the flags are unknown.
"""

from __future__ import annotations

import functools
import os
import platform

#: flags that decide how fast torch's CPU kernels are (SIMD width, native bfloat16, AMX)
KERNEL_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


@functools.cache
def _cpuinfo() -> tuple[str | None, frozenset[str] | None]:
    """(model name, flags) of the first CPU in /proc/cpuinfo; None for what is not there."""
    model = flags = None
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if model is None and line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                elif flags is None and line.startswith("flags"):
                    flags = frozenset(line.split(":", 1)[1].split())
                if model is not None and flags is not None:
                    break
    except OSError:
        pass
    return model, flags


def cpu_model() -> str:
    """The CPU's model name, e.g. "AMD EPYC 9B14"."""
    return _cpuinfo()[0] or platform.processor() or platform.machine()


def cpu_flags(wanted: tuple[str, ...] = KERNEL_FLAGS) -> str:
    """Which of ``wanted`` the CPU has, space-separated ("unknown" without /proc/cpuinfo)."""
    flags = _cpuinfo()[1]
    if flags is None:
        return "unknown"
    return " ".join(f for f in wanted if f in flags) or "none of " + " ".join(wanted)


def describe() -> str:
    """One line: model, logical CPUs and kernel flags."""
    return f"{cpu_model()}; {os.cpu_count()} logical CPUs; flags {cpu_flags()}"
