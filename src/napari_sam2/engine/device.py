"""Device choice and mixed precision for the engine.

``choose_device`` is the model package's resolver (CUDA, then MPS, then CPU; clear errors for
devices that are not there). ``autocast(device)`` is bfloat16 autocast on CUDA GPUs that
support it and does nothing on CPU and MPS (float32 there, which is also what Meta's CPU
outputs are computed in).
"""

from __future__ import annotations

import contextlib

import torch

from napari_sam2.model.device import available_devices, choose_device

__all__ = ["autocast", "available_devices", "choose_device", "supports_bfloat16"]


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
