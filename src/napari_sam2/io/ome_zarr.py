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

Saving is atomic and never destroys what is not ours (see ``docs/safety.md``): the store is
written to a hidden sibling, re-opened and checked, then swapped in; an existing target that is
not a napari-sam2 label store is refused (:class:`RefusedOverwriteError`); saving to an
OME-Zarr *image* writes ``image.zarr/labels/<name>`` beside its arrays. Reading a damaged or
unsupported store raises :class:`DamagedFileError` naming the file and what is wrong.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from napari_sam2._safe_write import atomic_dir, json_text
from napari_sam2.errors import DamagedFileError, RefusedOverwriteError
from napari_sam2.io._axes import (
    LabelsMeta,
    _AXIS_TYPES,
    check_labels_array,
    frame_chunks,
    layer_record,
    make_meta,
    plain_json,
)
from napari_sam2.io._chunks import copy_stored_chunks, is_zarr, lazy_labels, stored_regions
from napari_sam2.io._zarr_store import (
    NGFF_VERSION,
    PROVENANCE_KEY,
    check_labels_group,
    check_replaceable,
    image_of,
    labels_target,
    load_json,
    locate_label_image,
    register_in_image,
)

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
    """Write a labels array as an NGFF 0.5 label image in a zarr v3 store, atomically.

    Args:
        path: target directory, conventionally ending in ``.zarr``. When it is an OME-Zarr
            image (multiscales, no image-label) the labels go to ``path/labels/<name>`` (name
            made folder-safe) and are listed in the image's ``labels`` group.
        labels: (..., Y, X) integer array, 2 to 5 dims (numpy, dask or zarr).
        scale, translate: per-dimension world scale and offset (napari's layer.scale/translate).
        name: layer name, stored as the multiscale name.
        axis_labels: the napari layer's axis labels; valid NGFF names (t, c, z, y, x in NGFF
            order) are used as the axes, others are kept only in the provenance record.
        units: per-dimension units; NGFF units (e.g. "micrometer") go into the axes.
        colors: optional {label value: (r, g, b, a) 0-255} for the ``image-label`` colours.
        provenance: JSON-able dict stored under the ``napari_sam2`` attribute (numpy scalars
            are converted; anything else that is not JSON raises ValueError before writing).
        overwrite: replace an existing napari-sam2 label store at the target (False: raise
            :class:`RefusedOverwriteError` whenever the target exists).

    Returns:
        The path written (``path`` or ``path/labels/<name>``), as a string.

    Raises:
        ValueError: bad labels or attributes (nothing written).
        RefusedOverwriteError: the target exists and is not a label store written by
            napari-sam2 holding only its own files (nothing written).
        OSError: the write failed (disk full...); the previous store is intact.
    """
    lazy = lazy_labels(labels)  # zarr or dask: streamed block by block, never read whole
    arr = check_labels_array(labels) if lazy is None else lazy
    meta = make_meta(
        arr, scale=scale, translate=translate, name=name, axis_labels=axis_labels,
        units=units, provenance=provenance,
    )
    record = {**layer_record(meta), **meta.provenance}
    attrs = plain_json(
        {"ome": _ngff_attrs(meta, colors), PROVENANCE_KEY: record}, f"the metadata of {path}")
    target = labels_target(path, meta.name)
    if target.exists() and not overwrite:
        raise RefusedOverwriteError(
            f"{target} exists and overwrite=False: choose another name or pass overwrite=True")
    check_replaceable(target)
    if image_of(target) is not None:
        check_labels_group(image_of(target))

    def write(tmp: Path) -> None:
        import zarr

        root = zarr.open_group(str(tmp), mode="w", zarr_format=3, attributes=attrs)
        data = root.create_array(
            "0", shape=arr.shape, dtype=arr.dtype, chunks=frame_chunks(arr.shape),
            fill_value=0, dimension_names=list(meta.axes),
        )
        # one chunk per assignment: nothing is left writing in the background when a write
        # fails (the temporary store can then be removed completely)
        for block in _blocks_to_copy(arr, data.chunks):
            data[block] = np.asarray(arr[block])

    def verify(tmp: Path) -> None:
        import zarr

        back = zarr.open_array(str(tmp / "0"), mode="r")
        last = (-1,) * (arr.ndim - 2)
        back_attrs = load_json(tmp / "zarr.json").get("attributes")
        if back.shape != arr.shape or back.dtype != arr.dtype or \
                not _same_last_plane(back, arr, last) or \
                json_text(back_attrs, "attributes") != json_text(attrs, "attributes"):
            raise OSError(f"the store written to {tmp} does not read back as written")

    atomic_dir(target, write, verify)
    register_in_image(target)
    return str(target)


def _blocks_to_copy(arr, chunks):
    """The blocks of ``arr`` to write into an array cut at ``chunks`` (all zeros at first):
    every block, or for a zarr source only those of its stored chunks (the rest is 0)."""
    if is_zarr(arr) and tuple(arr.chunks) == tuple(chunks):
        return [tuple(slice(k, k + 1) if isinstance(k, int) else k for k in region)
                for region in stored_regions(arr)]
    return itertools.product(*(
        [slice(i, i + c) for i in range(0, n, c)] for n, c in zip(arr.shape, chunks)))


def _same_last_plane(back, arr, last) -> bool:
    """Whether the last plane reads back as written (for a zarr source: its stored chunks)."""
    if not is_zarr(arr):
        return bool(np.array_equal(back[last], np.asarray(arr[last])))
    lead = tuple(n - 1 for n in arr.shape[:-2])
    return all(np.array_equal(back[r], arr[r]) for r in stored_regions(arr, lead))


def find_label_image(path) -> Path | None:
    """The directory of the NGFF label image stored at ``path`` (itself, or the first entry
    of its ``labels`` group), or None when ``path`` holds no NGFF labels. Never raises."""
    try:
        return locate_label_image(Path(path))
    except (OSError, ValueError):
        return None


def _damaged(where: Path, what: str) -> DamagedFileError:
    return DamagedFileError(
        f"{where} is damaged: {what}. Restore it from a backup, or save the labels again.")


def _parse_group(where: Path, attrs: dict):
    """(ome, dataset path, scale, translate, axes, units, record, colors) from the group's
    attributes, or a DamagedFileError saying what is malformed."""
    try:
        ome = attrs["ome"]
        ms = ome["multiscales"][0]
        dataset = ms["datasets"][0]
        ds_path = str(dataset["path"])
        scale = translate = None
        for tf in dataset.get("coordinateTransformations", []):
            if tf.get("type") == "scale":
                scale = tuple(float(v) for v in tf["scale"])
            elif tf.get("type") == "translation":
                translate = tuple(float(v) for v in tf["translation"])
        axes_doc = ms.get("axes", [])
        axes = tuple(str(a["name"]) if isinstance(a, dict) else str(a) for a in axes_doc)
        units = tuple(a.get("unit") if isinstance(a, dict) else None for a in axes_doc)
        record = attrs.get(PROVENANCE_KEY, {})
        if not isinstance(record, dict):
            raise TypeError(f"the '{PROVENANCE_KEY}' record is a {type(record).__name__}, "
                            "not an object")
        record = dict(record)
        colors = {
            int(c["label-value"]): tuple(int(v) for v in c["rgba"])
            for c in (ome.get("image-label") or {}).get("colors", [])
        }
        name = str(record.pop("name", ms.get("name", where.name)))
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise _damaged(where, f"its OME metadata in zarr.json is malformed "
                              f"({type(exc).__name__}: {exc})") from None
    return ds_path, scale, translate, axes, units, record, colors, name


def _read_array(where: Path, ds_path: str, lazy_above: int | None = None):
    import zarr

    array_dir = where / ds_path
    if not (array_dir / "zarr.json").exists():
        raise _damaged(where, f"its label array '{ds_path}' is missing ({array_dir / 'zarr.json'}"
                              " not found; was the store copied completely?)")
    doc = load_json(array_dir / "zarr.json")
    if doc.get("node_type") != "array":
        raise _damaged(where, f"'{ds_path}' is not a zarr array")
    try:
        array = zarr.open_array(str(array_dir), mode="r")
    except Exception as exc:  # noqa: BLE001 - zarr raises many types for bad metadata
        raise _damaged(where, f"the metadata of its array '{ds_path}' is invalid "
                              f"({type(exc).__name__}: {exc})") from None
    kind = np.dtype(array.dtype)
    if not (np.issubdtype(kind, np.integer) or kind == bool):
        raise DamagedFileError(
            f"{where} holds {kind} values, but labels must be integers: it is not a label "
            "image; open it as an image with napari's own reader")
    if not 2 <= array.ndim <= 5:
        raise DamagedFileError(
            f"{where} has {array.ndim} dimensions (shape {array.shape}); labels have 2 to 5 "
            "(..., y, x)")
    try:
        if lazy_above is not None and array.nbytes > lazy_above:
            return copy_stored_chunks(array)  # in memory, compressed, chunk by chunk
        return np.asarray(array[...])
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - codecs raise RuntimeError, ValueError...
        raise _damaged(where, f"a chunk of its label array '{ds_path}' cannot be decoded "
                              f"({type(exc).__name__}: {exc})") from None


def read_labels_zarr(path, *, lazy_above: int | None = None
                     ) -> tuple[np.ndarray, LabelsMeta, dict[int, tuple[int, ...]]]:
    """Read a label image written by :func:`write_labels_zarr` (or any NGFF 0.5 labels).

    Args:
        lazy_above: labels larger than this (bytes) are not read into one numpy array but
            copied, chunk by chunk and only the chunks the store holds, into a zarr array in
            memory (``_chunks.copy_stored_chunks``; the file is never written through it).

    Returns:
        ``(labels, meta, colors)``: the full-resolution array as numpy (or that zarr array),
        a ``LabelsMeta`` with the axes, scale, translate, name and provenance, and the
        ``image-label`` colours.

    Raises:
        FileNotFoundError: nothing at ``path``.
        DamagedFileError: ``path`` holds no readable NGFF label image; the message names the
            file, what is wrong (no labels, malformed metadata, missing array, a chunk that
            cannot be decoded, float values...) and what to do.
    """
    where = locate_label_image(Path(path))
    attrs = load_json(where / "zarr.json").get("attributes") or {}
    ds_path, scale, translate, axes, units, record, colors, name = _parse_group(where, attrs)
    labels = _read_array(where, ds_path, lazy_above)
    ndim = labels.ndim
    scale = scale or (1.0,) * ndim
    translate = translate or (0.0,) * ndim
    for what, values in (("scale", scale), ("translation", translate), ("axes", axes)):
        if values and len(values) != ndim:
            raise _damaged(where, f"its {what} has {len(values)} entries for a {ndim}-D array")
    axis_labels = record.pop("axis_labels", None)
    napari_units = record.pop("units", None)
    for key in ("scale", "translate"):
        record.pop(key, None)
    meta = LabelsMeta(
        axes=axes or tuple(f"dim_{i}" for i in range(ndim)),
        scale=tuple(scale),
        translate=tuple(translate),
        name=name,
        axis_labels=tuple(axis_labels) if axis_labels else None,
        units=tuple(napari_units) if napari_units else (units if any(units) else None),
        provenance=record,
    )
    return labels, meta, colors
