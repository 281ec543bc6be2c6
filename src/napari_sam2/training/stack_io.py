"""Read and check the user's image + label stacks for fine-tuning (TIFF, zarr, OME-Zarr, .npy).

``load_pair`` returns two aligned ``(N, H, W)`` arrays: a 2D image is one frame, a 2D+t or 3D
stack is a sequence along its first axis. Every problem (a file that cannot be read, labels of
another shape than the images, labels without any object, float labels) raises ``ValueError``
naming the file and what to do, before any model is built.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["read_array", "check_pair", "load_pair"]


def read_array(path: str | os.PathLike, *, labels: bool = False) -> np.ndarray:
    """Read a whole array from a TIFF, a zarr array/group (OME-Zarr: full resolution) or .npy.

    For ``labels=True`` an OME-Zarr image with a ``labels`` group gives its first label image.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise ValueError(f"cannot read {path}: the file does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix in (".tif", ".tiff"):
            return _read_tiff(path)
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if path.is_dir() or suffix == ".zarr":
            return _read_zarr(path, labels=labels)
    except ValueError as exc:
        if str(exc).startswith(f"cannot read {path}"):
            raise
        raise ValueError(f"cannot read {path}: {exc}") from None
    except Exception as exc:  # damaged files raise many types (TiffFileError, KeyError, OSError)
        raise ValueError(f"cannot read {path}: {type(exc).__name__}: {exc}. Pass a TIFF, a zarr "
                         "array or OME-Zarr image, or a .npy file") from None
    raise ValueError(f"cannot read {path}: unsupported file type {suffix or '(none)'}; pass a "
                     ".tif/.tiff, a .zarr folder or a .npy file")


def _read_tiff(path: Path) -> np.ndarray:
    import logging

    import tifffile

    logger = logging.getLogger("tifffile")
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # a damaged file is reported below, on one line
    try:
        array = np.asarray(tifffile.imread(str(path)))
    finally:
        logger.setLevel(level)
    if array.size == 0:
        raise ValueError(f"cannot read {path}: the TIFF holds no image data (damaged or "
                         "truncated?); export the stack again")
    return array


def _read_zarr(path: Path, *, labels: bool) -> np.ndarray:
    import zarr

    if labels:
        from napari_sam2.io import find_label_image, read_labels_zarr

        if find_label_image(path) is not None:
            return read_labels_zarr(path)[0]
    node = zarr.open(str(path), mode="r")
    if isinstance(node, zarr.Array):
        return np.asarray(node[...])
    ome = dict(node.attrs).get("ome", dict(node.attrs))
    multiscales = ome.get("multiscales") if isinstance(ome, dict) else None
    if multiscales:
        return np.asarray(node[multiscales[0]["datasets"][0]["path"]][...])
    arrays = [k for k, v in node.members() if isinstance(v, zarr.Array)]
    if len(arrays) == 1:
        return np.asarray(node[arrays[0]][...])
    raise ValueError(f"cannot read {path}: a zarr group without multiscales metadata and with "
                     f"{len(arrays)} arrays; pass the array's own path")


def _as_frames(images: np.ndarray) -> np.ndarray:
    """(H, W), (N, H, W), (H, W, 3) or (N, H, W, 3) -> (N, H, W) grey (RGB averaged)."""
    if images.ndim >= 3 and images.shape[-1] == 3:
        images = images.astype(np.float32).mean(-1)
    if images.ndim == 2:
        images = images[None]
    return images


def check_pair(images, labels, *, name: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Validate an image/label pair and return ``(images (N,H,W), labels (N,H,W) int64)``."""
    where = f" ({name})" if name else ""
    images, labels = np.asarray(images), np.asarray(labels)
    if not (np.issubdtype(images.dtype, np.number) or images.dtype == bool):
        raise ValueError(f"images{where} have dtype {images.dtype}; pass numeric intensities")
    if images.size == 0:
        raise ValueError(f"images{where} are empty (shape {images.shape})")
    if labels.size == 0:
        raise ValueError(f"the label stack{where} is empty (shape {labels.shape}); pass a "
                         "label image with the same shape as the images")
    if np.issubdtype(labels.dtype, np.floating):
        if not np.array_equal(labels, np.round(labels)):
            raise ValueError(f"labels{where} are float with fractional values; pass an "
                             "integer label image (0 = background, 1, 2, ... = objects)")
    elif not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise ValueError(f"labels{where} have dtype {labels.dtype}; pass integer labels")
    frames = _as_frames(images)
    lab = labels[None] if labels.ndim == 2 else labels
    if frames.ndim != 3 or lab.shape != frames.shape:
        raise ValueError(f"labels{where} have shape {labels.shape} but the images have shape "
                         f"{images.shape}: they must match (2D, 2D+t or 3D, frames or slices "
                         "along the first axis)")
    if min(frames.shape[1:]) < 8:
        raise ValueError(f"images{where} frames of {frames.shape[1:]} are too small (>= 8x8)")
    lab = lab.astype(np.int64)
    if not (lab > 0).any():
        raise ValueError(f"the label stack{where} contains no object (all zero); label at "
                         "least one object (values > 0)")
    if (lab < 0).any():
        raise ValueError(f"labels{where} contain negative values; use 0 for background")
    return frames, lab


def load_pair(images_path, labels_path) -> tuple[np.ndarray, np.ndarray]:
    """Read and check an image file and its label file (see :func:`check_pair`)."""
    images = read_array(images_path)
    labels = read_array(labels_path, labels=True)
    return check_pair(images, labels, name=f"{images_path} / {labels_path}")
