"""OME-Zarr (NGFF 0.5, zarr format 3) labels: write and read, with zarr only.

Layout written by :func:`write_labels_zarr` (the store is itself a valid NGFF label image)::

    labels.zarr/
      zarr.json         group; attributes: {"ome": {"version": "0.5", "multiscales": [...],
                        "image-label": {"colors": [...]}}, "napari_sam2": {provenance}}
      0/                the label array, one (y, x) plane per chunk, zstd-compressed,
                        ``dimension_names`` = the NGFF axis names

The scale and translation of the napari layer become the dataset's coordinate transformations,
so the labels reopen at the same world position. :func:`read_labels_zarr` also reads the first
label image of a standard OME-Zarr image (``image.zarr/labels/<name>``), e.g. one written by
``ome-zarr-py``; the optional ome-zarr packages are never needed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from napari_sam2.io._axes import (
    LabelsMeta,
    _AXIS_TYPES,
    check_labels_array,
    frame_chunks,
    layer_record,
    make_meta,
)

NGFF_VERSION = "0.5"
PROVENANCE_KEY = "napari_sam2"

# units NGFF accepts (UDUNITS-2 names) among those napari users commonly set
_NGFF_UNITS = {
    "angstrom", "nanometer", "micrometer", "millimeter", "centimeter", "meter",
    "nanosecond", "microsecond", "millisecond", "second", "minute", "hour", "day",
}


def _ngff_attrs(meta: LabelsMeta, colors: dict[int, tuple[int, int, int, int]] | None) -> dict:
    axes = []
    for i, name in enumerate(meta.axes):
        axis = {"name": name, "type": _AXIS_TYPES[name]}
        unit = meta.units[i] if meta.units else None
        if unit in _NGFF_UNITS:
            axis["unit"] = unit
        axes.append(axis)
    transforms = [{"type": "scale", "scale": list(meta.scale)}]
    if any(t != 0 for t in meta.translate):
        transforms.append({"type": "translation", "translation": list(meta.translate)})
    image_label: dict = {}
    if colors:
        image_label["colors"] = [
            {"label-value": int(k), "rgba": [int(c) for c in rgba]}
            for k, rgba in sorted(colors.items())
        ]
    return {
        "version": NGFF_VERSION,
        "multiscales": [
            {
                "name": meta.name,
                "axes": axes,
                "datasets": [{"path": "0", "coordinateTransformations": transforms}],
            }
        ],
        "image-label": image_label,
    }


def write_labels_zarr(
    path,
    labels,
    *,
    scale=None,
    translate=None,
    name: str = "labels",
    axis_labels=None,
    units=None,
    colors: dict[int, tuple[int, int, int, int]] | None = None,
    provenance: dict | None = None,
    overwrite: bool = True,
) -> str:
    """Write a labels array as an NGFF 0.5 label image in a zarr v3 store.

    Args:
        path: target directory, conventionally ending in ``.zarr``.
        labels: (..., Y, X) integer array, 2 to 5 dims (numpy, dask or zarr).
        scale, translate: per-dimension world scale and offset (napari's layer.scale/translate).
        name: layer name, stored as the multiscale name.
        axis_labels: the napari layer's axis labels; valid NGFF names (t, c, z, y, x in NGFF
            order) are used as the axes, others are kept only in the provenance record.
        units: per-dimension units; NGFF units (e.g. "micrometer") go into the axes.
        colors: optional {label value: (r, g, b, a) 0-255} for the ``image-label`` colours.
        provenance: JSON-able dict stored under the ``napari_sam2`` attribute.
        overwrite: replace an existing store at ``path`` (False: raise FileExistsError).

    Returns:
        The path written, as a string.
    """
    import zarr

    arr = check_labels_array(labels)
    meta = make_meta(
        arr, scale=scale, translate=translate, name=name, axis_labels=axis_labels,
        units=units, provenance=provenance,
    )
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    data = root.create_array(
        "0",
        shape=arr.shape,
        dtype=arr.dtype,
        chunks=frame_chunks(arr.shape),
        fill_value=0,
        dimension_names=list(meta.axes),
    )
    data[...] = arr
    record = {**layer_record(meta), **meta.provenance}
    root.attrs.update({"ome": _ngff_attrs(meta, colors), PROVENANCE_KEY: record})
    return str(path)


def _group_attrs(path: Path) -> dict | None:
    """The attributes of the zarr v3 group at ``path``, or None if it is not one."""
    try:
        doc = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError):
        return None
    if doc.get("node_type") != "group":
        return None
    return doc.get("attributes", {})


def find_label_image(path) -> Path | None:
    """The directory of the NGFF label image stored at ``path`` (itself, or the first entry
    of its ``labels`` group), or None when ``path`` holds no NGFF labels. Never raises."""
    path = Path(path)
    attrs = _group_attrs(path)
    if attrs is None:
        return None
    ome = attrs.get("ome", {})
    if "image-label" in ome and ome.get("multiscales"):
        return path
    label_attrs = _group_attrs(path / "labels")
    names = (label_attrs or {}).get("ome", {}).get("labels") or []
    for name in names:
        sub = path / "labels" / str(name)
        sub_ome = (_group_attrs(sub) or {}).get("ome", {})
        if sub_ome.get("multiscales"):
            return sub
    return None


def read_labels_zarr(path) -> tuple[np.ndarray, LabelsMeta, dict[int, tuple[int, ...]]]:
    """Read a label image written by :func:`write_labels_zarr` (or any NGFF 0.5 labels).

    Returns:
        ``(labels, meta, colors)``: the full-resolution array as numpy, a ``LabelsMeta`` with
        the axes, scale, translate, name and provenance, and the ``image-label`` colours.

    Raises:
        ValueError: when ``path`` holds no NGFF label image.
    """
    import zarr

    where = find_label_image(path)
    if where is None:
        raise ValueError(
            f"{path} is not an OME-Zarr (NGFF 0.5) label image: expected a zarr v3 group with "
            "'multiscales' and 'image-label' metadata, or an image with a 'labels' group"
        )
    group = zarr.open_group(str(where), mode="r")
    attrs = dict(group.attrs)
    ome = attrs["ome"]
    ms = ome["multiscales"][0]
    dataset = ms["datasets"][0]
    labels = np.asarray(group[dataset["path"]][...])
    ndim = labels.ndim
    scale, translate = [1.0] * ndim, [0.0] * ndim
    for tf in dataset.get("coordinateTransformations", []):
        if tf.get("type") == "scale":
            scale = [float(v) for v in tf["scale"]]
        elif tf.get("type") == "translation":
            translate = [float(v) for v in tf["translation"]]
    axes = tuple(str(a["name"]) if isinstance(a, dict) else str(a) for a in ms.get("axes", []))
    units = tuple(a.get("unit") if isinstance(a, dict) else None for a in ms.get("axes", []))
    record = dict(attrs.get(PROVENANCE_KEY, {}))
    axis_labels = record.pop("axis_labels", None)
    napari_units = record.pop("units", None)
    name = record.pop("name", ms.get("name", where.name))
    for key in ("scale", "translate"):
        record.pop(key, None)
    meta = LabelsMeta(
        axes=axes or tuple(f"dim_{i}" for i in range(ndim)),
        scale=tuple(scale),
        translate=tuple(translate),
        name=str(name),
        axis_labels=tuple(axis_labels) if axis_labels else None,
        units=tuple(napari_units) if napari_units else (units if any(units) else None),
        provenance=record,
    )
    colors = {
        int(c["label-value"]): tuple(int(v) for v in c["rgba"])
        for c in ome.get("image-label", {}).get("colors", [])
    }
    return labels, meta, colors
