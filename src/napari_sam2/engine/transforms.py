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
* ``upsample_logits``: low-res logits -> the frame's (H, W), bilinear, align_corners False;
* ``logits_to_masks``: the same upsampling thresholded at 0 into (M, H, W) bool, tile by tile.

Memory: images and masks of any size are processed in blocks of at most ``BLOCK_BYTES`` of
float32, so that a 20000 x 20000 image never exists as float32 (1.6 GB per channel) nor do its
masks (1.6 GB each); see docs/image_predictor.md, "Memory for big images".

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

# Largest float32 working block of the tiled image and mask paths (bytes).
BLOCK_BYTES = 32 << 20


def check_finite(arr: np.ndarray, what: str = "image") -> None:
    """Raise ValueError when a float array has NaN or infinite pixels (the one policy of the
    image predictor and the tracking engine: such pixels have no intensity to map, and
    guessing one would segment an invented image).

    Args:
        arr: (H, W) or (H, W, 3) array; integer arrays are always finite.
        what: how the message names the array, e.g. ``"image"`` or ``"frame 4"``.
    """
    if not np.issubdtype(arr.dtype, np.floating) or arr.size == 0:
        return
    # NaN propagates through min and max, and +-inf is an extreme: no (H, W) bool array
    # is made unless there is something to report.
    if np.isfinite(arr.min()) and np.isfinite(arr.max()):
        return
    finite = np.isfinite(arr)
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


def _intensity_mapper(arr: np.ndarray, rng: tuple[float, float] | None):
    """The function that ``map_intensity`` applies, for any block of rows of ``arr``.

    The constants (the image's own minimum and maximum when no range is given) come from the
    whole image, so mapping it block by block gives the same values as mapping it at once.

    Returns:
        f(block (h, W) or (h, W, 3) of ``arr``'s dtype) -> float32 block in [0, 1].
    """
    if rng is None and arr.dtype == np.uint8:
        return lambda a: a.astype(np.float32) / np.float32(255.0)
    # float32 is exact for 8/16-bit ints; wider types are mapped in float64 then rounded.
    is_int = np.issubdtype(arr.dtype, np.integer)
    wide = arr.dtype.itemsize > 4 or (is_int and arr.dtype.itemsize == 4)
    work = np.float64 if wide else np.float32
    # min and max of the raw values: rounding to ``work`` is monotonic, so these equal the
    # extremes of the converted image without converting it.
    lo, hi = (float(work(arr.min())), float(work(arr.max()))) if rng is None else rng
    if hi <= lo:  # constant image (no range given)
        return lambda a: np.zeros(a.shape, np.float32)
    # Values or a span beyond float32 (e.g. a float64 image from -1e308 to 1e308) are mapped
    # in float64, halved first when even the span overflows, instead of becoming NaN.
    halve = not np.isfinite(hi - lo)
    if halve or max(abs(lo), abs(hi), hi - lo) > float(np.finfo(work).max):
        work = np.float64
    shift, span = (lo / 2, hi / 2 - lo / 2) if halve else (lo, hi - lo)

    def mapped(a: np.ndarray) -> np.ndarray:
        x = a.astype(work, copy=True)
        if halve:
            x *= 0.5
        x -= work(shift)
        x /= work(span)
        np.clip(x, 0.0, 1.0, out=x)
        return x.astype(np.float32, copy=False)

    return mapped


def map_intensity(image, intensity_range=None) -> np.ndarray:
    """Map pixel values to float32 in [0, 1]; the shape is kept.

    Rules, in order:

    * ``intensity_range=(lo, hi)``: lo -> 0, hi -> 1, values outside are clipped;
    * uint8 (and bool) without a range: ``x / 255`` exactly as torchvision's ``ToTensor``;
    * any other dtype: the image's own minimum -> 0 and maximum -> 1; a constant image -> 0.

    NaN and infinite pixels raise ValueError (``check_image``). This makes a float32 copy of
    the whole image; ``preprocess_image`` maps it block by block instead.

    Args:
        image: (H, W) or (H, W, 3) array (see ``check_image``).
        intensity_range: optional (lo, hi), e.g. napari's contrast limits.

    Returns:
        float32 array of the same shape, values in [0, 1].
    """
    arr = check_image(image)
    return _intensity_mapper(arr, check_intensity_range(intensity_range))(arr)


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


def _resize_in_row_blocks(arr: np.ndarray, to_float, image_size: int, device: torch.device,
                          block_bytes: int | None = None) -> torch.Tensor:
    """(H, W) or (H, W, C) array -> (1, C, S, S) float32 on ``device``, equal to
    ``resize_to_model`` of the whole image mapped by ``to_float``, without that whole image.

    Torch's antialiased resize is separable and resizes the width first, then the height.
    Here the width pass runs on blocks of rows (each mapped to float32 on its own), into an
    (1, C, H, S) buffer; the height pass then runs on that buffer. On the CPU the result is
    bit-identical to resizing at once (tested); CUDA resizes both axes in one kernel, so there
    the two agree to float rounding.
    """
    S = int(image_size)
    h, w = arr.shape[:2]
    c = 1 if arr.ndim == 2 else arr.shape[2]
    budget = BLOCK_BYTES if block_bytes is None else int(block_bytes)
    rows = max(1, budget // (8 * w * c))  # float64 work copy of wide ints + float32 result
    buf = torch.empty((1, c, h, S), dtype=torch.float32, device=device)  # (1, C, H, S)
    for r0 in range(0, h, rows):
        blk = torch.from_numpy(np.ascontiguousarray(to_float(arr[r0:r0 + rows]),
                                                    dtype=np.float32)).to(device)
        blk = blk[None, None] if blk.ndim == 2 else blk.permute(2, 0, 1)[None]  # (1, C, rows, W)
        if w != S:
            blk = F.interpolate(blk, size=(blk.shape[-2], S), mode="bilinear",
                                align_corners=False, antialias=True)
        buf[:, :, r0:r0 + rows] = blk
    return resize_to_model(buf, S)


def _model_input(arr: np.ndarray, to_float, image_size: int, device) -> torch.Tensor:
    device = torch.device("cpu") if device is None else torch.device(device)
    work_device = device if device.type == "cuda" else torch.device("cpu")
    t = _resize_in_row_blocks(arr, to_float, image_size, work_device)
    if t.shape[1] == 1:
        t = t.expand(-1, 3, -1, -1)
    return normalize_imagenet(t).contiguous().to(device)


def to_model_input(
    scaled: np.ndarray, image_size: int, device: torch.device | str | None = None
) -> torch.Tensor:
    """(H, W) or (H, W, 3) float32 in [0, 1] -> (1, 3, S, S) normalised model input.

    Grey images are resized as one channel and then repeated to three (identical to resizing
    three equal channels). The resize runs on ``device`` when it is CUDA, else on the CPU, in
    blocks of rows (``_resize_in_row_blocks``).
    """
    scaled = np.asarray(scaled)
    return _model_input(scaled, lambda a: a, image_size, device)


def preprocess_image(
    image, image_size: int, *, intensity_range=None, device=None
) -> torch.Tensor:
    """Any supported image -> (1, 3, S, S) float32 normalised tensor on ``device``.

    Equals ``to_model_input(map_intensity(image, intensity_range), ...)`` but maps and resizes
    the image in blocks of rows, so the extra memory is about ``BLOCK_BYTES`` plus an
    (H, S) float32 buffer per channel instead of a float32 copy of the image.
    """
    arr = check_image(image)
    to_float = _intensity_mapper(arr, check_intensity_range(intensity_range))
    return _model_input(arr, to_float, image_size, device)


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


def _linear_weights(n_in: int, n_out: int, device) -> tuple[torch.Tensor, ...]:
    """Torch's bilinear (align_corners False) sampling of one axis: for each output index,
    the two input indices and their float32 weights, computed as torch's CPU kernel does
    (source index ``(dst + 0.5) * n_in / n_out - 0.5`` clamped at 0, rounded once as a fused
    multiply-add; float64 holds the exact product).

    Returns:
        i0, i1 (n_out,) int64 and w0, w1 (n_out,) float32 on ``device``.
    """
    if n_in == n_out:
        idx = torch.arange(n_out, device=device)
        return idx, idx, torch.ones(n_out, device=device), torch.zeros(n_out, device=device)
    scale = np.float32(n_in) / np.float32(n_out)
    dst = np.arange(n_out, dtype=np.float32) + np.float32(0.5)
    src = (np.float64(scale) * dst.astype(np.float64) - 0.5).astype(np.float32)
    src = np.maximum(src, np.float32(0.0))
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    w1 = np.clip(src - i0, 0.0, 1.0).astype(np.float32)
    w0 = np.float32(1.0) - w1
    i1 = i0 + (i0 < n_in - 1)
    return tuple(torch.from_numpy(a).to(device) for a in (i0, i1, w0, w1))


def _lerp_along(x: torch.Tensor, dim: int, i0, i1, w0, w1, scratch=None) -> torch.Tensor:
    """``x`` resampled along ``dim`` at (i0, i1, w0, w1): w0 * x[i0] + w1 * x[i1] with the
    rounding of torch's bilinear kernel (one fused multiply-add: ``addcmul``).

    ``scratch``: two flat float32 buffers to work in (the result is a view of the first), so
    that a loop over blocks allocates nothing; None: new tensors.
    """
    shape = list(x.shape)
    shape[dim] = len(i0)
    wshape = [1] * x.ndim
    wshape[dim] = -1
    if scratch is None:
        a, b = x.new_empty(shape), x.new_empty(shape)
    else:
        n = int(np.prod(shape))
        a, b = (buf[:n].view(shape) for buf in scratch)
    torch.index_select(x, dim, i1, out=a).mul_(w1.view(wshape))
    return a.addcmul_(torch.index_select(x, dim, i0, out=b), w0.view(wshape))


def logits_to_masks(logits: torch.Tensor, orig_hw: Sequence[int], *,
                    block_bytes: int | None = None) -> np.ndarray:
    """(M, h, w) low-res logits -> (M, H, W) bool masks ``upsample_logits(...) > 0``, tile by
    tile: the full-resolution float logits never exist.

    The bilinear upsampling is separable: each tile is the width pass of its columns (from
    the low-res rows) followed by the height pass of its rows, with torch's weights and
    rounding, so on the CPU the masks are bit-identical to thresholding ``upsample_logits``
    (tested against it; elsewhere, e.g. on CUDA, they agree except where a logit is within
    float rounding of 0). The tiles run on the logits' device; the masks are numpy on the CPU.

    Args:
        logits: (M, h, w) float mask logits (any device).
        orig_hw: (H, W) of the image.
        block_bytes: largest float32 tile (default ``BLOCK_BYTES``).

    Returns:
        (M, H, W) bool numpy array; extra memory besides it is about 3 * ``block_bytes``.
    """
    if logits.ndim != 3:
        raise ValueError(f"logits must be (M, h, w), got shape {tuple(logits.shape)}")
    H, W = (int(v) for v in orig_hw)
    if H <= 0 or W <= 0:
        raise ValueError(f"orig_hw must be a positive (H, W), got {tuple(orig_hw)}")
    x = logits.float()
    m, h, w = x.shape
    out = np.empty((m, H, W), dtype=bool)
    budget = max(1, (BLOCK_BYTES if block_bytes is None else int(block_bytes)) // 4)
    cols = max(1, min(W, budget // (m * h)))
    rows_w = _linear_weights(h, H, x.device)
    cols_w = _linear_weights(w, W, x.device)
    on_cpu = x.device.type == "cpu"
    out_t = torch.from_numpy(out)
    xt = x.transpose(1, 2).contiguous()  # (M, w, h): gathering whole rows is the fast way
    for c0 in range(0, W, cols):
        c = slice(c0, c0 + cols)
        tile = _lerp_along(xt, 1, *(t[c] for t in cols_w)).transpose(1, 2).contiguous()
        rows = max(1, budget // (2 * m * tile.shape[2]))
        scratch = [x.new_empty(m * min(rows, H) * tile.shape[2]) for _ in range(2)]
        for r0 in range(0, H, rows):
            r = slice(r0, r0 + rows)
            up = _lerp_along(tile, 1, *(t[r] for t in rows_w), scratch)  # (M, rows, cols)
            if on_cpu:
                torch.gt(up, 0, out=out_t[:, r, c])
            else:
                out_t[:, r, c] = (up > 0).cpu()
    return out
