"""npe2 writers: a Labels layer to OME-Zarr (NGFF 0.5) or OME-TIFF, through napari_sam2.io."""

from __future__ import annotations

from pathlib import Path

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


def _with_suffix(path: str, suffixes: tuple[str, ...]) -> str:
    return path if path.lower().endswith(suffixes) else path + suffixes[0]


def write_zarr(path: str, data, attributes: dict) -> list[str]:
    """Save one Labels layer as an OME-Zarr label image (``.zarr`` directory).

    Saving to an OME-Zarr image writes ``image.zarr/labels/<layer name>`` beside the image's
    arrays (see ``napari_sam2.io.labels_target``); the path really written is returned."""
    from napari_sam2.io import write_labels_zarr

    path = _with_suffix(str(path), (".zarr",))
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

    path = labels_tiff_name(path)
    return [write_labels_tiff(path, data, **_common(data, attributes))]
