"""npe2 writers: a Labels layer to OME-Zarr (NGFF 0.5) or OME-TIFF, through napari_sam2.io."""

from __future__ import annotations

from pathlib import Path

import numpy as np

PROVENANCE_KEY = "napari_sam2"


def _common(data, attributes: dict) -> dict:
    metadata = attributes.get("metadata") or {}
    units = attributes.get("units")
    return {
        "scale": attributes.get("scale"),
        "translate": attributes.get("translate"),
        "name": attributes.get("name") or "labels",
        "axis_labels": attributes.get("axis_labels"),
        "units": None if units is None else [str(u) for u in units],
        "provenance": dict(metadata.get(PROVENANCE_KEY) or {}),
    }


def _level0(data, attributes: dict):
    """The full-resolution labels of a layer's data (level 0 of multiscale labels: the
    coarser levels are views of it and are not saved)."""
    return data[0] if attributes.get("multiscale") or isinstance(data, list) else data


def _with_suffix(path: str, suffixes: tuple[str, ...]) -> str:
    return path if path.lower().endswith(suffixes) else path + suffixes[0]


def write_zarr(path: str, data, attributes: dict) -> list[str]:
    """Save one Labels layer as an OME-Zarr label image (``.zarr`` directory).

    Saving to an OME-Zarr image writes ``image.zarr/labels/<layer name>`` beside the image's
    arrays (see ``napari_sam2.io.labels_target``); the path really written is returned."""
    from napari_sam2.io import write_labels_zarr

    path = _with_suffix(str(path), (".zarr",))
    data = _level0(data, attributes)  # chunked labels of a huge image stream chunk by chunk
    return [write_labels_zarr(Path(path), data, **_common(data, attributes))]


def labels_tiff_name(path: str) -> str:
    """``path`` with a TIFF suffix, its name ending in "labels" ("cells.tif" ->
    "cells_labels.tif"): the manifest claims only such TIFFs, so that napari's own reader
    opens all others without asking, and the file reopens as labels."""
    path = _with_suffix(str(path), (".tif", ".tiff"))
    stem, dot, ext = path.rpartition(".")
    if not stem.lower().endswith("labels"):
        stem += "_labels"
    return f"{stem}{dot}{ext}"


def write_tiff(path: str, data, attributes: dict) -> list[str]:
    """Save one Labels layer as a compressed OME-TIFF, named as ``labels_tiff_name`` says (the
    path really written is returned)."""
    from napari_sam2.io import write_labels_tiff

    from napari_sam2._napari._big_labels import is_chunked, needs_chunked

    path = labels_tiff_name(path)
    data = _level0(data, attributes)
    if is_chunked(data) and needs_chunked(data.shape, data.dtype):
        size = int(np.prod(data.shape, dtype=np.float64)) * data.dtype.itemsize / 2**30
        raise ValueError(
            f"cannot save {path}: these labels of shape {tuple(data.shape)} ({size:.1f} GiB as "
            "one array) are kept in chunks, and a TIFF would be written from one array in "
            "memory; save them as OME-Zarr instead (a .zarr path), which is written chunk by "
            "chunk")
    return [write_labels_tiff(path, data, **_common(data, attributes))]
