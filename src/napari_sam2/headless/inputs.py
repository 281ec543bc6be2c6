"""Open an image stack lazily for a headless run: TIFF, OME-Zarr, plain zarr, ``.npy``.

Nothing is read until a frame is asked for: a TIFF is opened through tifffile's zarr view, a
``.npy`` is memory-mapped, a zarr array is read chunk by chunk. :func:`stack_of` fixes the
positions of the axes that are neither the stack axis nor the plane (e.g. the channel of a
(T, C, Y, X) stack), so that the engine sees (T, H, W) or (T, H, W, 3).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from napari_sam2.errors import DamagedFileError

__all__ = ["open_array", "open_image", "stack_of"]

SUFFIXES = (".tif", ".tiff", ".npy", ".zarr")


def open_image(path) -> object:
    """:func:`open_array` of an image stack: at least 3 dimensions (frames, y, x)."""
    array = open_array(path)
    if len(array.shape) < 3:
        raise ValueError(f"{path} has shape {tuple(array.shape)}: a stack needs at least 3 "
                         "dimensions (frames, y, x)")
    return array


def open_array(path, *, labels: bool = False) -> object:
    """A lazy array-like (``shape``, ``dtype``, ``__getitem__``) over the image at ``path``.

    OME-Zarr images give their full-resolution level; a zarr group without multiscales gives
    its array ``0``. ``labels=True`` reads a label image (an OME-Zarr image's first labels).

    Raises:
        FileNotFoundError: nothing at ``path``.
        DamagedFileError: the file cannot be read as an image (the message says why).
        ValueError: an unsupported kind of file.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: check the path")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES and not path.is_dir():
        raise ValueError(f"cannot read {path}: unsupported file type {suffix or '(none)'}; pass "
                         "a .tif/.tiff, a .zarr folder (OME-Zarr or plain zarr) or a .npy file")
    try:
        if suffix in (".tif", ".tiff"):
            array = _open_tiff(path)
        elif suffix == ".npy":
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        else:
            array = _open_zarr(path, labels)
    except (FileNotFoundError, DamagedFileError):
        raise
    except Exception as exc:  # noqa: BLE001 - damaged files raise many types
        raise DamagedFileError(
            f"cannot read {path} as an image ({type(exc).__name__}: {exc}); is it damaged or "
            "incompletely copied?") from None
    if min(array.shape, default=0) == 0:
        raise ValueError(f"{path} has shape {tuple(array.shape)}: it holds no pixels")
    return array


def _open_tiff(path: Path):
    import tifffile
    import zarr

    logger = logging.getLogger("tifffile")
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # a damaged file is reported once, by the caller
    try:
        node = zarr.open(tifffile.imread(str(path), aszarr=True), mode="r")
    finally:
        logger.setLevel(level)
    return node if hasattr(node, "shape") else node["0"]  # a pyramid: full resolution


def _open_zarr(path: Path, labels: bool = False):
    import zarr

    if labels:
        from napari_sam2.io._zarr_store import locate_label_image

        path = locate_label_image(path)
    node = zarr.open(str(path), mode="r")
    if hasattr(node, "shape"):
        return node
    attrs = dict(node.attrs)
    ome = attrs.get("ome", attrs)  # NGFF 0.5 nests under "ome", 0.4 does not
    multiscales = ome.get("multiscales") if isinstance(ome, dict) else None
    if multiscales:
        if "image-label" in ome and not labels:
            raise ValueError(f"{path} is a label image, not an image: pass the image itself")
        return node[str(multiscales[0]["datasets"][0]["path"])]
    if "0" in node:
        return node["0"]
    raise DamagedFileError(f"{path} is a zarr group without an image: it has no OME "
                           "multiscales metadata and no array '0'; pass the array's folder")


def stack_of(image, stack_axis: int = 0, other_axes: dict[int, int] | None = None,
             rgb: bool | None = None):
    """The lazy (T, H, W) or (T, H, W, 3) frames of ``image`` along ``stack_axis``, the other
    non-plane axes held at ``other_axes`` ({axis: index}, missing ones at 0): the widget's
    ``FrameStack``, so a replay reads exactly the frames the widget read.

    ``rgb`` None: a trailing axis of 3 after at least 3 others is colour.
    """
    from napari_sam2._napari._stack import FrameStack, StackRef

    shape = tuple(int(s) for s in image.shape)
    if rgb is None:
        rgb = len(shape) >= 4 and shape[-1] == 3
    plane = len(shape) - (3 if rgb else 2)
    if not 0 <= stack_axis < plane:
        raise ValueError(f"the stack axis {stack_axis} is not one of the axes before the planes "
                         f"of an image of shape {shape} (0..{plane - 1})")
    other = {int(k): int(v) for k, v in (other_axes or {}).items()}
    fixed = []
    for axis in range(plane):
        if axis == stack_axis:
            continue
        index = other.get(axis, 0)
        if not 0 <= index < shape[axis]:
            raise ValueError(f"position {index} of axis {axis} is out of range: the image "
                             f"{shape} has 0..{shape[axis] - 1} there")
        fixed.append((axis, index))
    return FrameStack(image, StackRef(plane + 2, stack_axis, tuple(fixed)), rgb=rgb)
