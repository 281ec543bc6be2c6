"""TIFF labels: an OME-TIFF (tifffile only) with our provenance record in a private tag.

The file is a standard OME-TIFF (axes such as ``TYX``, ``ZYX``, ``TZYX``; physical pixel sizes
from the layer scale), deflate-compressed, with ``Software = napari-sam2``. Everything napari
needs for an exact round trip (name, axis labels, scale, translate) is stored as JSON in private
tag 65000, which other readers ignore.

Saving is atomic (a hidden sibling ``.<name>.tmp-XXXX`` is written, re-read and renamed over the
target) and an existing file is replaced only when it is a TIFF written by napari-sam2
(:class:`RefusedOverwriteError` otherwise). Reading a damaged, truncated or unsupported file
raises :class:`DamagedFileError` naming the file, what is wrong and what to do.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from napari_sam2._safe_write import atomic_file, json_text
from napari_sam2.errors import DamagedFileError, RefusedOverwriteError
from napari_sam2.io._axes import (
    LabelsMeta,
    check_labels_array,
    layer_record,
    make_meta,
    plain_json,
)

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
    """Write (..., Y, X) integer labels (2 to 5 dims) as a compressed OME-TIFF, atomically.

    An existing file at ``path`` is replaced only when it is a TIFF written by napari-sam2.

    Returns:
        The path written, as a string.

    Raises:
        ValueError: bad labels, attributes or a provenance that is not JSON (nothing written).
        RefusedOverwriteError: ``path`` is a folder or a file not written by napari-sam2.
        OSError: the write failed (disk full...); the previous file is intact.
    """
    import tifffile

    arr, stored_dtype = _ome_dtype(check_labels_array(labels), path)
    meta = make_meta(
        arr, scale=scale, translate=translate, name=name, axis_labels=axis_labels,
        units=units, provenance=provenance,
    )
    record = plain_json({
        **layer_record(meta),
        "shape": list(arr.shape),
        "axes": list(meta.axes),
        "provenance": meta.provenance,
        **({"dtype": stored_dtype} if stored_dtype else {}),
    }, f"the metadata of {path}")
    ome_meta = {"axes": "".join(meta.axes).upper(), "Name": meta.name}
    for axis, size in zip(meta.axes, meta.scale):
        if axis in ("x", "y", "z"):
            ome_meta[f"PhysicalSize{axis.upper()}"] = size
        elif axis == "t":
            ome_meta["TimeIncrement"] = size
    path = Path(path)
    _check_replaceable(path)
    tag_text = json_text(record, f"the metadata of {path}")

    def write(tmp: Path) -> None:
        tifffile.imwrite(
            str(tmp), arr, ome=True, metadata=ome_meta, compression="zlib",
            photometric="minisblack", software=SOFTWARE,
            extratags=[(PROVENANCE_TAG, "s", 0, tag_text, True)],
        )

    def verify(tmp: Path) -> None:
        with tifffile.TiffFile(str(tmp)) as tif:
            series = tif.series[0]
            last = tif.pages[-1].asarray()
            ok = (tif.pages[0].tags.get(PROVENANCE_TAG) is not None
                  and series.dtype == arr.dtype and int(np.prod(series.shape)) == arr.size
                  and np.array_equal(last, arr.reshape((-1,) + arr.shape[-2:])[-1]))
        if not ok:
            raise OSError(f"the TIFF written to {tmp} does not read back as written")

    atomic_file(path, write, verify)
    return str(path)


def _ome_dtype(arr: np.ndarray, path) -> tuple[np.ndarray, str | None]:
    """OME-TIFF has no 64-bit integers: int64/uint64 labels whose values fit are stored as
    int32/uint32 (the original dtype, returned, goes into the record and is restored on
    reading); larger values raise a ValueError."""
    if arr.dtype.itemsize < 8:
        return np.ascontiguousarray(arr), None
    small = np.dtype(np.int32 if arr.dtype.kind == "i" else np.uint32)
    lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
    if lo < np.iinfo(small).min or hi > np.iinfo(small).max:
        raise ValueError(
            f"cannot save {path}: labels of dtype {arr.dtype} with values from {lo} to {hi} do "
            f"not fit the {small} that OME-TIFF can store; save as .zarr instead, or renumber "
            "the labels")
    return np.ascontiguousarray(arr.astype(small)), str(arr.dtype)


def _what_tiff(path: Path) -> str | None:
    """None for a TIFF written by napari-sam2, else a description of the file."""
    try:
        import tifffile

        with tifffile.TiffFile(str(path)) as tif:
            page = tif.pages[0]
            if PROVENANCE_TAG in page.tags and page.software == SOFTWARE:
                return None
            software = page.software
    except Exception:  # noqa: BLE001 - whatever the file is, it is not ours
        return "a file that cannot be read as a TIFF (damaged, or another kind of file)"
    return f"a TIFF written by {software!r}" if software else "a TIFF written by other software"


def _check_replaceable(path: Path) -> None:
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink():
        what = "a symbolic link"
    elif path.is_dir():
        what = "a folder"
    else:
        what = _what_tiff(path)
    if what is not None:
        raise RefusedOverwriteError(
            f"Refusing to save labels to {path}: it is {what}, and saving would replace it "
            "(only TIFF labels written by napari-sam2 are replaced). Nothing was changed. "
            "Choose another name, or move or delete it yourself first."
        )


def is_our_tiff(path) -> bool:
    """True when ``path`` is a TIFF written by :func:`write_labels_tiff`. Never raises."""
    return Path(path).is_file() and _what_tiff(Path(path)) is None


def read_labels_tiff(path) -> tuple[np.ndarray, LabelsMeta]:
    """Read labels written by :func:`write_labels_tiff` (other TIFFs: axes from the file).

    Returns:
        ``(labels, meta)``.

    Raises:
        FileNotFoundError: nothing at ``path``.
        DamagedFileError: not a TIFF, truncated or damaged, float values, colour samples, not
            2 to 5 dimensions, or a napari-sam2 record that does not fit the pixels.
    """
    import tifffile

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: check the path")
    if path.is_dir():
        raise DamagedFileError(f"{path} is a folder, not a TIFF file: choose the .tif file")
    try:
        with tifffile.TiffFile(str(path)) as tif:
            if not tif.series:
                raise DamagedFileError(f"{path} is a TIFF without any image in it")
            series = tif.series[0]
            axes_letters = series.axes.lower()
            if np.dtype(series.dtype).kind not in "iub":
                raise DamagedFileError(
                    f"{path} holds {np.dtype(series.dtype)} values, but labels must be "
                    "integers: it is an image, not labels; open it with napari's own reader")
            if "s" in axes_letters:
                raise DamagedFileError(
                    f"{path} has colour samples (axes {series.axes}, shape {series.shape}): it "
                    "is an RGB image, not labels; open it with napari's own reader")
            if not 2 <= len(series.shape) <= 5:
                raise DamagedFileError(
                    f"{path} has {len(series.shape)} dimensions (axes {series.axes}, shape "
                    f"{series.shape}); labels have 2 to 5 (..., y, x): this file is not labels")
            tag = tif.pages[0].tags.get(PROVENANCE_TAG)
            ours = tag is not None and tif.pages[0].software == SOFTWARE
            tag_text = tag.value if ours else None
            labels = series.asarray()
    except (DamagedFileError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - tifffile raises many types for bad files
        raise DamagedFileError(
            f"{path} cannot be read as a TIFF ({type(exc).__name__}: {exc}): it is damaged, "
            "truncated or not a TIFF; restore it from a backup or export it again") from None
    if tag_text is None:
        meta = make_meta(labels, name=path.stem)
        meta.axes = tuple(axes_letters) if len(axes_letters) == labels.ndim else meta.axes
        return labels, meta
    try:
        record = json.loads(tag_text)
        meta = LabelsMeta(
            axes=tuple(record["axes"]),
            scale=tuple(float(v) for v in record["scale"]),
            translate=tuple(float(v) for v in record["translate"]),
            name=str(record["name"]),
            axis_labels=tuple(record["axis_labels"]) if record.get("axis_labels") else None,
            units=tuple(record["units"]) if record.get("units") else None,
            provenance=dict(record.get("provenance", {})),
        )
        shape = tuple(int(s) for s in record.get("shape", labels.shape))
        if labels.shape != shape:  # tifffile may squeeze or add singleton dimensions
            labels = labels.reshape(shape)
        if "dtype" in record:  # 64-bit labels stored as 32-bit (OME-TIFF has no 64-bit ints)
            labels = labels.astype(np.dtype(record["dtype"]))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DamagedFileError(
            f"{path}: its napari-sam2 record (TIFF tag {PROVENANCE_TAG}) is damaged or does not "
            f"fit the pixels ({type(exc).__name__}: {exc}); restore the file from a backup or "
            "export it again") from None
    if not (len(meta.axes) == len(meta.scale) == len(meta.translate) == labels.ndim):
        raise DamagedFileError(
            f"{path}: its napari-sam2 record (TIFF tag {PROVENANCE_TAG}) describes "
            f"{len(meta.axes)} axes for a {labels.ndim}-D array; restore it from a backup")
    return labels, meta
