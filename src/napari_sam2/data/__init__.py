"""Deterministic synthetic microscopy data (numpy + scipy only)."""

from napari_sam2.data.dividing import make_dividing_timelapse
from napari_sam2.data.synthetic import make_cell_timelapse, make_ellipsoid_volume

__all__ = ["make_cell_timelapse", "make_dividing_timelapse", "make_ellipsoid_volume"]
