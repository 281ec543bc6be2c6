"""build_model: a Sam2Model with random weights from a variant name or a config."""

from __future__ import annotations

import torch

from .config import Sam2Config, get_config
from .device import choose_device
from .sam2 import Sam2Model

__all__ = ["build_model"]


def build_model(name_or_config: str | Sam2Config, *,
                device: str | torch.device | None = "cpu") -> Sam2Model:
    """Return a randomly initialised float32 :class:`Sam2Model` in eval mode.

    ``name_or_config``: a key of ``VARIANTS`` (e.g. ``"sam2.1_hiera_tiny"``) or a
    :class:`Sam2Config`. ``device``: where to build it. The default is ``"cpu"`` (random
    weights are for tests and for training from scratch, where the caller picks the device);
    ``"auto"`` or None mean what they mean in :func:`~napari_sam2.model.load_model` (CUDA, then
    MPS, then CPU), and ``"meta"`` builds shapes only, fast.
    """
    if not isinstance(name_or_config, (str, Sam2Config)):
        raise TypeError(f"build_model takes a variant name or a Sam2Config, got "
                        f"{type(name_or_config).__name__}")
    cfg = get_config(name_or_config) if isinstance(name_or_config, str) else name_or_config
    device = torch.device("meta") if str(device) == "meta" else choose_device(device)
    with device:
        model = Sam2Model(cfg)
    return model.to(dtype=torch.float32).eval()
