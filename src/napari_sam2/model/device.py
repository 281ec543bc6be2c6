"""Which torch device to run on.

``choose_device("auto")`` picks CUDA, then Apple MPS, then the CPU. Asking for a device that is
not there raises an InvalidOptionError (a ValueError) that says what is available, instead of
failing later inside torch. Lives in ``model`` so that both model loading and the engine use
the one resolver.
"""

from __future__ import annotations

import torch

from napari_sam2.errors import InvalidOptionError

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
        InvalidOptionError (a ValueError): unknown name, or the device is not available on
            this machine.
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
            raise InvalidOptionError(
                f"unknown device {preference!r}: use one of {', '.join(_KINDS)} (or 'cuda:N')"
            ) from None
    elif isinstance(preference, torch.device):
        device = preference
    else:
        raise TypeError(
            f"device must be a string or torch.device, got {type(preference).__name__}"
        )
    if device.type not in _KINDS:
        raise InvalidOptionError(
            f"unsupported device {str(device)!r}: use one of {', '.join(_KINDS)}"
        )
    have = available_devices()
    if device.type not in have:
        why = {"cuda": "torch finds no CUDA GPU (none present, no driver, or a CPU-only torch)",
               "mps": "torch finds no Apple GPU (MPS)"}.get(device.type, "")
        raise InvalidOptionError(
            f"device {str(device)!r} is not available on this machine"
            f"{': ' + why if why else ''}; available: {', '.join(have)} (or pass 'auto')"
        )
    if device.type == "cuda" and device.index is not None:
        n = torch.cuda.device_count()
        if device.index >= n:
            raise InvalidOptionError(
                f"device {str(device)!r} does not exist: this machine has {n} CUDA device(s)"
            )
    return device
