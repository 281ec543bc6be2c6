"""Pre- and post-processing shared by the image predictor and the tracking engine.

Plain functions, no state:

* ``check_image`` / ``map_intensity``: any numeric (H, W) grey or (H, W, 3) RGB array with
  finite values -> float32 in [0, 1] (NaN / inf pixels are an error, for still images and
  video frames alike: ``check_finite``);
* ``resize_to_model`` and ``normalize_imagenet``: Meta's still-image path (torchvision
  ``ToTensor`` -> ``Resize`` bilinear antialias -> ``Normalize``), reproduced with
  ``F.interpolate(mode="bilinear", antialias=True, align_corners=False)``;
* ``preprocess_image``: all of the above, (1, 3, S, S) ready for ``Sam2Model.encode_image``;
* ``points_to_model`` / ``box_to_model_points``: (row, col) frame pixels -> (x, y) pixels of the
  S x S model input, boxes as two corner points with labels 2 and 3;
* ``upsample_logits``: low-res logits -> the frame's (H, W), bilinear, align_corners False.

Coordinates follow napari: the centre of pixel (i, j) is at (row, col) = (i, j), so a point may
lie anywhere in [-0.5, H - 0.5] x [-0.5, W - 0.5].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

BOX_TOP_LEFT_LABEL = 2
BOX_BOTTOM_RIGHT_LABEL = 3


def check_finite(arr: np.ndarray, what: str = "image") -> None:
    """Raise ValueError when a float array has NaN or infinite pixels (the one policy of the
    image predictor and the tracking engine: such pixels have no intensity to map, and
    guessing one would segment an invented image).

    Args:
        arr: (H, W) or (H, W, 3) array; integer arrays are always finite.
        what: how the message names the array, e.g. ``"image"`` or ``"frame 4"``.
    """
    if not np.issubdtype(arr.dtype, np.floating):
        return
    finite = np.isfinite(arr)
    if finite.all():
        return
    bad = np.argwhere(~finite)
    where = tuple(int(v) for v in bad[0][:2])
    raise ValueError(
        f"{what} contains {len(bad)} NaN or infinite value(s), the first at (row, col) "
        f"{where}: pass finite values, e.g. np.nan_to_num(x, nan=0.0, posinf=hi, neginf=lo) "
        "with the intensities that those pixels should have"
    )


def check_image(image, what: str = "image", *, finite: bool = True) -> np.ndarray:
    """Validate an image and return it as an (H, W) or (H, W, 3) numpy array.

    Accepts (H, W) grey, (H, W, 1) grey and (H, W, 3) RGB, of any real numeric or bool dtype,
    with finite values.

    Args:
        image: the array.
        what: how error messages name it (``"frame 4"`` for a video frame).
        finite: check the values too (False: dtype and shape only).

    Raises:
        TypeError: for non-numeric dtypes (complex, object, strings).
        ValueError: for other shapes (RGBA, channels first, stacks), an empty image, or NaN /
            infinite pixels (``check_finite``).
    """
    arr = np.asarray(image)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(
            f"image dtype {arr.dtype} is not supported: pass a real-valued numeric array "
            "(uint8, uint16, int, float)"
        )
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        pass
    elif arr.ndim == 3 and arr.shape[-1] == 3:
        pass
    elif arr.ndim == 3:
        hint = " (RGBA: drop the alpha channel with image[..., :3])" if arr.shape[-1] == 4 else ""
        hint += (
            "; channels must be last" if arr.shape[0] in (1, 3) and arr.shape[-1] > 4 else ""
        )
        raise ValueError(
            f"image has shape {arr.shape} with {arr.shape[-1]} channels: pass (H, W) grey or "
            f"(H, W, 3) RGB{hint}"
        )
    else:
        raise ValueError(
            f"image has {arr.ndim} dimensions (shape {arr.shape}): pass a single 2-D frame, "
            "(H, W) grey or (H, W, 3) RGB; index stacks frame by frame"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"image is empty (shape {arr.shape}): it needs at least 1x1 pixels")
    if finite:
        check_finite(arr, what)
    return arr


def check_intensity_range(intensity_range) -> tuple[float, float] | None:
    """Validate ``(lo, hi)``: two finite numbers with ``hi > lo``; None passes through."""
    if intensity_range is None:
        return None
    try:
        lo, hi = (float(v) for v in intensity_range)
    except (TypeError, ValueError):
        raise ValueError(
            f"intensity_range must be two numbers (lo, hi), got {intensity_range!r}"
        ) from None
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        raise ValueError(
            f"intensity_range must be finite with hi > lo, got {intensity_range!r} "
            "(e.g. the layer's contrast limits)"
        )
    return lo, hi


def map_intensity(image, intensity_range=None) -> np.ndarray:
    """Map pixel values to float32 in [0, 1]; the shape is kept.

    Rules, in order:

    * ``intensity_range=(lo, hi)``: lo -> 0, hi -> 1, values outside are clipped;
    * uint8 (and bool) without a range: ``x / 255`` exactly as torchvision's ``ToTensor``;
    * any other dtype: the image's own minimum -> 0 and maximum -> 1; a constant image -> 0.

    NaN and infinite pixels raise ValueError (``check_image``).

    Args:
        image: (H, W) or (H, W, 3) array (see ``check_image``).
        intensity_range: optional (lo, hi), e.g. napari's contrast limits.

    Returns:
        float32 array of the same shape, values in [0, 1].
    """
    arr = check_image(image)
    rng = check_intensity_range(intensity_range)
    if rng is None and arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(255.0)
    # float32 is exact for 8/16-bit ints; wider types are mapped in float64 then rounded.
    is_int = np.issubdtype(arr.dtype, np.integer)
    wide = arr.dtype.itemsize > 4 or (is_int and arr.dtype.itemsize == 4)
    work = np.float64 if wide else np.float32
    x = arr.astype(work, copy=True)
    lo, hi = (float(x.min()), float(x.max())) if rng is None else rng
    if hi <= lo:  # constant image (no range given)
        return np.zeros(arr.shape, np.float32)
    x -= work(lo)
    x /= work(hi - lo)
    np.clip(x, 0.0, 1.0, out=x)
    return x.astype(np.float32, copy=False)


def resize_to_model(x: torch.Tensor, image_size: int) -> torch.Tensor:
    """Resize (B, C, H, W) float to (B, C, S, S): bilinear, antialiased, aspect ratio not kept.

    Equals torchvision's ``Resize((S, S))`` on float tensors (the path Meta's image predictor
    takes). Antialiasing only acts when shrinking; upsampling is plain bilinear.
    """
    if x.shape[-2:] == (image_size, image_size):
        return x
    return F.interpolate(
        x, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True
    )


def normalize_imagenet(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, S, S) in [0, 1] -> ImageNet-normalised, as torchvision's ``Normalize``."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def to_model_input(
    scaled: np.ndarray, image_size: int, device: torch.device | str | None = None
) -> torch.Tensor:
    """(H, W) or (H, W, 3) float32 in [0, 1] -> (1, 3, S, S) normalised model input.

    Grey images are resized as one channel and then repeated to three (identical to resizing
    three equal channels). The resize runs on ``device`` when it is CUDA, else on the CPU.
    """
    device = torch.device("cpu") if device is None else torch.device(device)
    work_device = device if device.type == "cuda" else torch.device("cpu")
    t = torch.from_numpy(np.ascontiguousarray(scaled, dtype=np.float32)).to(work_device)
    t = t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None]  # (1, C, H, W)
    t = resize_to_model(t, image_size)
    if t.shape[1] == 1:
        t = t.expand(-1, 3, -1, -1)
    return normalize_imagenet(t).contiguous().to(device)


def preprocess_image(
    image, image_size: int, *, intensity_range=None, device=None
) -> torch.Tensor:
    """Any supported image -> (1, 3, S, S) float32 normalised tensor on ``device``."""
    return to_model_input(map_intensity(image, intensity_range), image_size, device)


def points_to_model(points, orig_hw: Sequence[int], image_size: int) -> np.ndarray:
    """(N, 2) (row, col) frame pixels -> (N, 2) float32 (x, y) in S x S model-input pixels.

    x = col / W * S and y = row / H * S, as Meta's ``normalize_coords=True`` (its prompt
    encoder then adds half a pixel).
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    h, w = orig_hw
    xy = np.stack([pts[:, 1] / w, pts[:, 0] / h], axis=1) * image_size
    return xy.astype(np.float32)


def box_to_model_points(box, orig_hw: Sequence[int], image_size: int) -> np.ndarray:
    """Box (r0, c0, r1, c1) -> (2, 2) float32 (x, y) corners for labels 2 and 3."""
    r0, c0, r1, c1 = (float(v) for v in box)
    return points_to_model([[r0, c0], [r1, c1]], orig_hw, image_size)


def upsample_logits(logits: torch.Tensor, orig_hw: Sequence[int]) -> torch.Tensor:
    """(B, M, h, w) logits -> (B, M, H, W), bilinear with align_corners False (no antialias)."""
    h, w = int(orig_hw[0]), int(orig_hw[1])
    if logits.shape[-2:] == (h, w):
        return logits
    return F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
