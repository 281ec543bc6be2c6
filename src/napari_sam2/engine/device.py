"""Device choice and mixed precision for the engine.

``choose_device`` is the model package's resolver (CUDA, then MPS, then CPU; clear errors for
devices that are not there). ``autocast(device)`` is bfloat16 autocast by default on CUDA GPUs
that support it; elsewhere it does nothing: float32, which is also what Meta's CPU outputs are
computed in. CPUs with AVX512-BF16 or AMX-BF16 (found in ``/proc/cpuinfo`` on Linux; other
systems count as without, see ``cpu_has_native_bfloat16``) *can* run bfloat16, but only when
asked: measured with the official SAM 2.1 tiny layout, bf16 masks agreed with float32 ones at
IoU >= 0.98 on only 20 % of frame-objects (docs/tracking.md), so it is opt-in on the CPU.

The environment variable ``NAPARI_SAM2_BFLOAT16`` overrides the default (``enabled=None``):
``0`` means float32 everywhere (also on CUDA); ``1`` turns bfloat16 on for the CPU (where the
detection says no, e.g. a Zen 4 or Sapphire Rapids CPU on Windows or macOS, it trusts you).
Unset or empty: CUDA with bf16 yes, CPU no. An explicit ``enabled=True`` / ``False`` always
wins over the variable.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys

import torch

from napari_sam2.errors import InvalidOptionError
from napari_sam2.model.device import available_devices, choose_device

__all__ = ["ENV_VAR", "autocast", "available_devices", "bfloat16_override", "choose_device",
           "cpu_flags", "cpu_has_native_bfloat16", "supports_bfloat16", "uses_bfloat16"]

ENV_VAR = "NAPARI_SAM2_BFLOAT16"
_NATIVE_FLAGS = ("avx512_bf16", "amx_bf16")


def bfloat16_override() -> bool | None:
    """``NAPARI_SAM2_BFLOAT16`` as True (``1``), False (``0``) or None (unset / empty)."""
    raw = os.environ.get(ENV_VAR, "").strip().lower()
    if raw == "":
        return None
    if raw in ("1", "true", "on", "yes"):
        return True
    if raw in ("0", "false", "off", "no"):
        return False
    raise InvalidOptionError(
        f"environment variable {ENV_VAR}={os.environ[ENV_VAR]!r} is not understood: set it to "
        "1 (bfloat16 on), 0 (float32) or leave it unset (detect)")


def cpu_flags(cpuinfo: str) -> set[str]:
    """The CPU flags in the text of a Linux ``/proc/cpuinfo`` (first ``flags`` line)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


@functools.lru_cache(maxsize=1)
def cpu_has_native_bfloat16() -> bool:
    """True where the CPU does bfloat16 matrix math natively (x86 AVX512-BF16 or AMX-BF16).

    Read from ``/proc/cpuinfo`` on Linux. Elsewhere False (conservative): torch does not say
    (``torch.backends.cpu.get_cpu_capability()`` gives only the vector width, e.g. "AVX512",
    not bf16), and emulated bfloat16 is slower than float32; set ``NAPARI_SAM2_BFLOAT16=1``
    on such a machine that has it.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            flags = cpu_flags(f.read())
    except OSError:
        return False
    return any(flag in flags for flag in _NATIVE_FLAGS)


def supports_bfloat16(device: torch.device | str) -> bool:
    """True on CUDA devices with native bfloat16 (Ampere and newer) and on CPUs with native
    bfloat16 (``cpu_has_native_bfloat16``, or ``NAPARI_SAM2_BFLOAT16=1``)."""
    device = torch.device(device)
    if device.type == "cpu":
        return cpu_has_native_bfloat16() or bfloat16_override() is True
    if device.type != "cuda":
        return False
    try:
        with torch.cuda.device(device):
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # older torch without the keyword
        return bool(torch.cuda.is_bf16_supported())


def uses_bfloat16(device: torch.device | str, enabled: bool | None = None) -> bool:
    """Whether ``autocast(device, enabled)`` runs in bfloat16 (ValueError as ``autocast``).

    Args:
        device: where the model runs.
        enabled: None (default): bfloat16 on CUDA devices that support it unless
            ``NAPARI_SAM2_BFLOAT16=0``, and on a bf16-capable CPU only with
            ``NAPARI_SAM2_BFLOAT16=1``; False: float32; True: bfloat16, a ValueError on a
            device without it.
    """
    device = torch.device(device)
    ok = supports_bfloat16(device)
    if enabled is None:
        override = bfloat16_override()
        enabled = ok and (override is True if device.type == "cpu" else override is not False)
    if enabled and not ok:
        hint = (f" (if this CPU has AVX512-BF16 or AMX, set {ENV_VAR}=1)"
                if device.type == "cpu" else "")
        raise ValueError(
            f"bfloat16 autocast needs a CUDA GPU with bfloat16 support or a CPU with native "
            f"bfloat16; {device} has none{hint}: pass bfloat16=None or False")
    return bool(enabled)


def autocast(device: torch.device | str, enabled: bool | None = None):
    """Context manager for the model's forward passes on ``device``: bfloat16 autocast when
    ``uses_bfloat16(device, enabled)``, else a no-op (float32)."""
    device = torch.device(device)
    if not uses_bfloat16(device, enabled):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
