"""Predictors and the tracking session (torch + numpy; never napari or Qt).

Names are resolved lazily so that ``import napari_sam2.engine.types`` stays torch-free.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "MaskPrediction": "napari_sam2.engine.types",
    "FrameResult": "napari_sam2.engine.types",
    "ImagePredictor": "napari_sam2.engine.image_predictor",
    "ImageEmbedding": "napari_sam2.engine.image_predictor",
    "TrackingSession": "napari_sam2.engine.session",
    "Lineage": "napari_sam2.engine.lineage",
    "TrackSegment": "napari_sam2.engine.lineage",
    "DivisionRule": "napari_sam2.engine.division",
    "choose_device": "napari_sam2.engine.device",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'napari_sam2.engine' has no attribute {name!r}")
