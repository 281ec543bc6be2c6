"""Sample data for the plugin (File > Open Sample > SAM 2), made offline and deterministic."""

from __future__ import annotations

import numpy as np


def _contrast(images: np.ndarray) -> list[float]:
    lo, hi = np.percentile(images, (0.5, 99.8))
    return [float(lo), float(hi)]


def cell_timelapse():
    """A 16-bit 2D+t time-lapse of moving, deforming, touching, noisy cells (t, y, x)."""
    from napari_sam2.data.synthetic import make_cell_timelapse

    images, _ = make_cell_timelapse(n_frames=24, shape=(192, 256), n_cells=6, seed=0)
    meta = {
        "name": "cells (t, y, x)",
        "axis_labels": ("t", "y", "x"),
        "contrast_limits": _contrast(images),
        "colormap": "gray",
    }
    return [(images, meta, "image")]


def ellipsoid_volume():
    """A 16-bit 3D volume of ellipsoids (z, y, x), with 2x coarser sampling along z."""
    from napari_sam2.data.synthetic import make_ellipsoid_volume

    volume, _ = make_ellipsoid_volume(shape=(32, 160, 160), n_objects=6, seed=0)
    meta = {
        "name": "ellipsoids (z, y, x)",
        "axis_labels": ("z", "y", "x"),
        "scale": (2.0, 1.0, 1.0),
        "contrast_limits": _contrast(volume),
        "colormap": "gray",
    }
    return [(volume, meta, "image")]
