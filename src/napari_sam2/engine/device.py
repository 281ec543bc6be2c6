"""Device choice and mixed precision.

``choose_device("auto")`` picks CUDA, then Apple MPS, then the CPU. Asking for a device that is
not there raises a ValueError that says what is available, instead of failing later inside
torch. ``autocast(device)`` is bfloat16 autocast on CUDA GPUs that support it and does nothing
on CPU and MPS (float32 there, which is also what Meta's CPU outputs are computed in).
"""

from __future__ import annotations

import contextlib

import torch

_KINDS = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    """Names of the device kinds usable here, best first (e.g. ``["cuda", "cpu"]``)."""
    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    if _mps_available():
        found.append("mps")
    found.append("cpu")
    return found


def choose_device(preference: str | torch.device | None = "auto") -> torch.device:
    """Resolve a device preference.

    Args:
        preference: ``"auto"`` (or None): CUDA, then MPS, then CPU; ``"cpu"``, ``"cuda"``,
            ``"cuda:N"``, ``"mps"`` or a ``torch.device``: that device, if it exists.

    Raises:
        ValueError: unknown name, or the device is not available on this machine.
    """
    if preference is None:
        preference = "auto"
    if isinstance(preference, str):
        name = preference.strip().lower()
        if name == "auto":
            return torch.device(available_devices()[0])
        try:
            device = torch.device(name)
        except RuntimeError:
            raise ValueError(
                f"unknown device {preference!r}: use one of {', '.join(_KINDS)} (or 'cuda:N')"
            ) from None
    elif isinstance(preference, torch.device):
        device = preference
    else:
        raise TypeError(
            f"device must be a string or torch.device, got {type(preference).__name__}"
        )
    if device.type not in _KINDS:
        raise ValueError(f"unsupported device {str(device)!r}: use one of {', '.join(_KINDS)}")
    have = available_devices()
    if device.type not in have:
        raise ValueError(
            f"device {str(device)!r} is not available on this machine; available: "
            f"{', '.join(have)} (or pass 'auto')"
        )
    if device.type == "cuda" and device.index is not None:
        n = torch.cuda.device_count()
        if device.index >= n:
            raise ValueError(
                f"device {str(device)!r} does not exist: this machine has {n} CUDA device(s)"
            )
    return device


def supports_bfloat16(device: torch.device | str) -> bool:
    """True on CUDA devices with native bfloat16 (Ampere and newer)."""
    device = torch.device(device)
    if device.type != "cuda":
        return False
    try:
        with torch.cuda.device(device):
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # older torch without the keyword
        return bool(torch.cuda.is_bf16_supported())


def autocast(device: torch.device | str, enabled: bool | None = None):
    """Context manager for the model's forward passes on ``device``.

    Args:
        device: where the model runs.
        enabled: None (default): bfloat16 on CUDA where supported, float32 elsewhere; False:
            always float32; True: bfloat16 on CUDA, a ValueError on a device without it.
    """
    device = torch.device(device)
    ok = supports_bfloat16(device)
    if enabled is None:
        enabled = ok
    if not enabled:
        return contextlib.nullcontext()
    if not ok:
        raise ValueError(
            f"bfloat16 autocast needs a CUDA GPU with bfloat16 support; {device} has none: "
            "pass enabled=None or False"
        )
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
