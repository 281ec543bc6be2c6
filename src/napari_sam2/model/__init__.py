"""SAM 2 in plain PyTorch: configs, modules named after Meta's checkpoint keys, Sam2Model.

``build_model(name)`` gives a randomly initialised model; ``load_model(name, checkpoint)``
(in :mod:`napari_sam2.model.loading`) one with weights. Configs import without torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .config import VARIANTS, Sam2Config, get_config

__all__ = ["VARIANTS", "Sam2Config", "Sam2Model", "build_model", "get_config", "load_model"]

_LAZY = {
    "build_model": ".build",
    "Sam2Model": ".sam2",
    "load_model": ".loading",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
