"""TIFF labels: an OME-TIFF (tifffile only) with our provenance record in a private tag.

The file is a standard OME-TIFF (axes such as ``TYX``, ``ZYX``, ``TZYX``; physical pixel sizes
from the layer scale), deflate-compressed, with ``Software = napari-sam2``. Everything napari
needs for an exact round trip (name, axis labels, scale, translate) is stored as JSON in private
tag 65000, which other readers ignore.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from napari_sam2.io._axes import LabelsMeta, check_labels_array, layer_record, make_meta

SOFTWARE = "napari-sam2"
PROVENANCE_TAG = 65000


def write_labels_tiff(
    path,
    labels,
    *,
    scale=None,
    translate=None,
    name: str = "labels",
    axis_labels=None,
    units=None,
    provenance: dict | None = None,
) -> str:
    """Write (..., Y, X) integer labels (2 to 5 dims) as a compressed OME-TIFF.

    Returns:
        The path written, as a string.
    """
    import tifffile

    arr = check_labels_array(labels)
    meta = make_meta(
        arr, scale=scale, translate=translate, name=name, axis_labels=axis_labels,
        units=units, provenance=provenance,
    )
    record = {
        **layer_record(meta),
        "shape": list(arr.shape),
        "axes": list(meta.axes),
        "provenance": meta.provenance,
    }
    ome_meta = {"axes": "".join(meta.axes).upper(), "Name": meta.name}
    for axis, size in zip(meta.axes, meta.scale):
        if axis in ("x", "y", "z"):
            ome_meta[f"PhysicalSize{axis.upper()}"] = size
        elif axis == "t":
            ome_meta["TimeIncrement"] = size
    tifffile.imwrite(
        str(path),
        np.ascontiguousarray(arr),
        ome=True,
        metadata=ome_meta,
        compression="zlib",
        photometric="minisblack",
        software=SOFTWARE,
        extratags=[(PROVENANCE_TAG, "s", 0, json.dumps(record), True)],
    )
    return str(path)


def is_our_tiff(path) -> bool:
    """True when ``path`` is a TIFF written by :func:`write_labels_tiff`. Never raises."""
    try:
        import tifffile

        with tifffile.TiffFile(str(path)) as tif:
            return PROVENANCE_TAG in tif.pages[0].tags
    except Exception:  # noqa: BLE001 - a reader probe must never raise
        return False


def read_labels_tiff(path) -> tuple[np.ndarray, LabelsMeta]:
    """Read labels written by :func:`write_labels_tiff` (other TIFFs: axes from the file).

    Returns:
        ``(labels, meta)``.
    """
    import tifffile

    path = Path(path)
    with tifffile.TiffFile(str(path)) as tif:
        series = tif.series[0]
        labels = series.asarray()
        tag = tif.pages[0].tags.get(PROVENANCE_TAG)
        tag_text = None if tag is None else tag.value
        axes_letters = series.axes.lower()
    if tag_text is None:
        ndim = labels.ndim
        meta = make_meta(labels, name=path.stem)
        meta.axes = tuple(axes_letters) if len(axes_letters) == ndim else meta.axes
        return labels, meta
    record = json.loads(tag_text)
    meta = LabelsMeta(
        axes=tuple(record["axes"]),
        scale=tuple(record["scale"]),
        translate=tuple(record["translate"]),
        name=record["name"],
        axis_labels=tuple(record["axis_labels"]) if record.get("axis_labels") else None,
        units=tuple(record["units"]) if record.get("units") else None,
        provenance=record.get("provenance", {}),
    )
    shape = tuple(record.get("shape", labels.shape))
    if labels.shape != shape:  # tifffile may squeeze or add singleton dimensions
        labels = labels.reshape(shape)
    return labels, meta
