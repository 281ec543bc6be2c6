"""Automatic segmentation of one frame ("segment everything"): SAM's automatic mask generation
on our image predictor.

    result = segment_everything(model, frame)          # or an ImagePredictor
    result.labels                                      # (H, W) int32, 0 = background
    result.iou, result.stability, result.object_score  # (K,) per label, label ids result.ids

Steps, per crop (crop layer 0 is the whole frame; layer k adds a 2^k x 2^k grid of
overlapping crops, each encoded at full model resolution, for small objects):

1. one encoder pass; a ``points_per_side`` x ``points_per_side`` grid of single positive
   points (only those inside ``region`` when one is given);
2. the points decoded ``points_per_batch`` at a time on the one embedding (three candidate
   masks each; the mask decoder's cached path, its image side computed once per crop), never
   one point at a time;
3. candidates kept when predicted IoU >= ``iou_threshold``, stability (area at logit > +offset
   over area at logit > -offset) >= ``stability_threshold``, object score logit >
   ``object_score_threshold``, and area <= ``max_area_fraction`` of the crop; in crops,
   masks cut by an inner crop edge are dropped;
4. mask non-maximum suppression (IoU > ``nms_threshold``, best predicted IoU wins), within
   each crop and then across crops, on masks at most ``NMS_SIDE`` pixels on a side; then
   (``drop_unions``) a mask that is mostly two or more other kept, nearly disjoint masks
   together (touching cells taken as one) is left out;
5. holes up to ``max_hole_area`` filled, specks up to ``max_sprinkle_area`` removed (frame
   pixels), then the masks painted best first into the label image, each only onto pixels
   that are still empty (and inside ``region``, and not ``occupied``); a mask left with
   fewer than ``min_area`` pixels is dropped.

Memory stays bounded: candidates are kept as low-resolution logits (float16), NMS runs on
downsampled masks in row chunks, and the final masks are upsampled a few at a time.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch

from napari_sam2.engine import transforms as T
from napari_sam2.engine.image_predictor import ImagePredictor
from napari_sam2.engine.mask_nms import (crop_boxes, downsample_masks, mask_nms, point_grid,
                                        unions_of_others)
from napari_sam2.engine.postprocess import postprocess_logits
from napari_sam2.errors import InvalidOptionError
from napari_sam2.model.mask_decoder import stability_scores

__all__ = ["AutomaticOptions", "AutomaticResult", "SegmentationCancelled",
           "iter_segment_everything", "segment_everything"]

NMS_SIDE = 128  # NMS compares masks downsampled to at most this many pixels per side
PAINT_CHUNK = 16  # masks upsampled to frame resolution at a time


class SegmentationCancelled(Exception):
    """``segment_everything`` was cancelled (its ``cancel()`` returned True)."""


@dataclass(frozen=True)
class AutomaticOptions:
    """The options of ``segment_everything`` (defaults tuned on the synthetic cell set with
    ``sam2_demo``; docs/automatic.md says what each trades)."""

    points_per_side: int = 24  # grid density per crop: points = points_per_side ** 2 per crop
    points_per_batch: int = 64  # prompts decoded together (memory ~ batch x 3 masks)
    crop_layers: int = 0  # 0: whole frame only; k: also 2^j x 2^j crops for j = 1..k
    crop_overlap: float = 0.25  # overlap of neighbouring crops, share of the crop side
    iou_threshold: float = 0.6  # keep masks with predicted IoU >= this
    stability_threshold: float = 0.8  # keep masks with stability score >= this
    stability_offset: float = 1.0  # logit offset of the stability score
    object_score_threshold: float = 0.0  # keep masks whose object score logit is above this
    nms_threshold: float = 0.5  # a mask overlapping a better one by IoU > this is a duplicate
    max_area_fraction: float = 0.3  # larger masks (share of the crop) are background
    min_area: int = 30  # frame pixels a label must keep after painting
    max_hole_area: int = 30  # fill holes up to this many frame pixels (0: off)
    max_sprinkle_area: int = 30  # remove specks up to this many frame pixels (0: off)
    drop_unions: bool = True  # drop a mask that is mostly two or more other kept masks

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, rule: str) -> None:
            if not ok:
                raise InvalidOptionError(
                    f"segment everything: {name}={getattr(self, name)!r} is not allowed; "
                    f"it must be {rule}")

        def whole(name: str, low: int, high: int | None = None) -> None:
            v = getattr(self, name)
            ok = isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= low
            ok = ok and (high is None or v <= high)
            need(ok, name, f"a whole number >= {low}" + ("" if high is None else f" and <= {high}"))

        def share(name: str, low: float = 0.0, high: float = 1.0, open_low=False) -> None:
            v = getattr(self, name)
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            ok = ok and (v > low if open_low else v >= low) and v <= high
            need(ok, name, f"a number in {'(' if open_low else '['}{low}, {high}]")

        whole("points_per_side", 1, 256)
        whole("points_per_batch", 1)
        whole("crop_layers", 0, 4)
        share("crop_overlap", 0.0, 0.5)
        share("iou_threshold")
        share("stability_threshold")
        share("stability_offset", 0.0, 100.0)
        v = self.object_score_threshold
        need(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
             "object_score_threshold", "a finite number (a logit; 0 = even odds)")
        share("nms_threshold", 0.0, 1.0, open_low=True)
        share("max_area_fraction", 0.0, 1.0, open_low=True)
        whole("min_area", 0)
        whole("max_hole_area", 0)
        whole("max_sprinkle_area", 0)
        need(isinstance(self.drop_unions, (bool, np.bool_)), "drop_unions", "True or False")

    def as_dict(self) -> dict:
        return asdict(self)


OPTION_NAMES = tuple(f.name for f in fields(AutomaticOptions))


@dataclass(frozen=True)
class AutomaticResult:
    """What ``segment_everything`` found on one frame.

    Attributes:
        labels: (H, W) int32, 0 background, objects ``ids`` (``first_id`` upwards, best
            predicted IoU first).
        ids: (K,) int32 label ids.
        iou: (K,) predicted IoU of each label's mask.
        stability: (K,) stability score.
        object_score: (K,) object score logit.
        area: (K,) pixels each label holds.
        points: (K, 2) float (row, col) of the grid point whose prompt gave the mask.
        n_points: grid points decoded (all crops).
        n_candidates: masks that passed the thresholds, before NMS.
        seconds: wall time; ``points_per_second`` = n_points / seconds.
        options: the ``AutomaticOptions`` used.
    """

    labels: np.ndarray
    ids: np.ndarray
    iou: np.ndarray
    stability: np.ndarray
    object_score: np.ndarray
    area: np.ndarray
    points: np.ndarray
    n_points: int
    n_candidates: int
    seconds: float
    options: AutomaticOptions

    @property
    def points_per_second(self) -> float:
        return self.n_points / self.seconds if self.seconds > 0 else float("inf")

    def scores(self) -> dict[int, dict[str, float]]:
        """{label id: {"iou", "stability", "object_score", "area"}}."""
        return {int(k): {"iou": float(i), "stability": float(s), "object_score": float(o),
                         "area": int(a)}
                for k, i, s, o, a in zip(self.ids, self.iou, self.stability, self.object_score,
                                         self.area)}


@dataclass
class _Candidates:
    """Masks of one crop that passed the thresholds (low-res logits kept as float16)."""

    box: tuple[int, int, int, int]  # r0, c0, r1, c1 of the crop in the frame
    logits: torch.Tensor  # (N, 4h, 4w) float16
    iou: torch.Tensor  # (N,)
    stability: torch.Tensor
    object_score: torch.Tensor
    points: np.ndarray  # (N, 2) frame (row, col)


def _predictor(predictor_or_model, bfloat16) -> ImagePredictor:
    if isinstance(predictor_or_model, ImagePredictor):
        return predictor_or_model
    if not hasattr(predictor_or_model, "encode_image"):
        raise TypeError("segment_everything needs a Sam2Model or an ImagePredictor, got "
                        f"{type(predictor_or_model).__name__}")
    return ImagePredictor(predictor_or_model, bfloat16=bfloat16)


def _check_mask(mask, shape, name: str) -> np.ndarray | None:
    if mask is None:
        return None
    arr = np.asarray(mask)
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} must be a (H, W) mask of the frame's shape {tuple(shape)}, "
                         f"got shape {arr.shape}")
    return arr.astype(bool, copy=False)


def _frame_range(arr: np.ndarray, intensity_range):
    """The intensity range every crop is mapped with: the given one, or the whole frame's
    (so that crops look like the frame they come from); None for uint8 (/255)."""
    rng = T.check_intensity_range(intensity_range)
    if rng is not None or arr.dtype == np.uint8:
        return rng
    lo, hi = float(np.min(arr)), float(np.max(arr))
    return (lo, hi) if hi > lo else None


def _low_res_area(pixels: int, crop_hw, low: int) -> int:
    """A frame-pixel area in pixels of the crop's low-res (low x low) logits."""
    return int(pixels * low * low / max(1, crop_hw[0] * crop_hw[1]))


def _decode_crop(predictor: ImagePredictor, crop_image, rng, points: np.ndarray,
                 crop: tuple[int, int, int, int, int], opts: AutomaticOptions, frame_hw,
                 tick):
    """Encode one crop and decode its grid in batches. Generator: yields after each batch
    (``tick(n)`` counts the points); returns ``_Candidates`` after per-crop NMS."""
    layer, r0, c0, r1, c1 = crop
    hw = (r1 - r0, c1 - c0)
    emb = predictor.encode(crop_image, intensity_range=rng)
    model, S, dev = predictor.model, predictor.image_size, emb.device
    low = 4 * (S // model.config.backbone_stride)
    inner = (r0 > 0, r1 < frame_hw[0], c0 > 0, c1 < frame_hw[1])  # crop edges inside frame
    max_area = opts.max_area_fraction * low * low
    keep = {"logits": [], "iou": [], "stability": [], "object_score": [], "points": []}
    for s in range(0, len(points), opts.points_per_batch):
        pts = points[s:s + opts.points_per_batch]
        coords = torch.from_numpy(T.points_to_model(pts, hw, S))[:, None].to(dev)  # (B, 1, 2)
        codes = torch.ones(len(pts), 1, dtype=torch.int32, device=dev)
        with torch.inference_mode(), predictor._autocast():
            out = _decode(model, emb, coords, codes)
            logits = out.masks.float().flatten(0, 1)  # (B*3, low, low)
            iou = out.iou_predictions.float().flatten()
            m = logits.shape[0] // len(pts)
            obj = out.object_score_logits.float().repeat_interleave(m, 0).flatten()
            stab = stability_scores(logits, opts.stability_offset)
            area = (logits > 0).flatten(1).sum(1)
            ok = ((iou >= opts.iou_threshold) & (stab >= opts.stability_threshold)
                  & (obj > opts.object_score_threshold) & (area > 0) & (area <= max_area))
            if layer > 0:  # a mask cut by a crop edge inside the frame is half an object
                fg = logits > 0
                for cut, edge in zip(inner, (fg[:, 0, :], fg[:, -1, :], fg[:, :, 0],
                                             fg[:, :, -1])):
                    if cut:
                        ok &= ~edge.any(1)
            idx = torch.nonzero(ok).flatten()
            keep["logits"].append(logits[idx].to(torch.float16).cpu())
            keep["iou"].append(iou[idx].cpu())
            keep["stability"].append(stab[idx].cpu())
            keep["object_score"].append(obj[idx].cpu())
            keep["points"].append(pts[(idx // m).cpu().numpy()] + (r0, c0))
        tick(len(pts))
        yield
    cand = _Candidates((r0, c0, r1, c1), torch.cat(keep["logits"]), torch.cat(keep["iou"]),
                       torch.cat(keep["stability"]), torch.cat(keep["object_score"]),
                       np.concatenate(keep["points"]))
    n_before = len(cand.iou)
    kept = mask_nms(downsample_masks(cand.logits > 0, NMS_SIDE), cand.iou, opts.nms_threshold)
    return _select(cand, kept), n_before


def _decode(model, emb, coords: torch.Tensor, codes: torch.Tensor):
    """B single-point prompts (B, 1, 2), (B, 1) on one embedding -> ``MaskDecoderOutput``
    with three masks each: the decoder's cached path when the embedding has its cache (the
    image side of the decoder computed once), else ``prompt_and_decode``."""
    if emb.decoder_cache is None:
        return model.prompt_and_decode(emb.image_embed, emb.high_res_features,
                                       point_coords=coords, point_labels=codes,
                                       multimask_output=True)
    sparse, _ = model.sam_prompt_encoder((coords, codes), None, batch_size=coords.shape[0])
    return model.sam_mask_decoder.decode_cached(emb.decoder_cache, sparse, multimask_output=True)


def _select(c: _Candidates, idx) -> _Candidates:
    idx_t = torch.as_tensor(idx, dtype=torch.int64)
    return _Candidates(c.box, c.logits[idx_t], c.iou[idx_t], c.stability[idx_t],
                       c.object_score[idx_t], c.points[np.asarray(idx, np.int64)])


def _frame_grid_masks(cands: list[_Candidates], frame_hw) -> torch.Tensor:
    """Every candidate as a bool mask of the whole frame at NMS resolution (N, gh, gw)."""
    g = max(1, math.ceil(max(frame_hw) / NMS_SIDE))
    gh, gw = math.ceil(frame_hw[0] / g), math.ceil(frame_hw[1] / g)
    out = []
    for c in cands:
        r0, c0, r1, c1 = c.box
        a0, b0 = r0 // g, c0 // g
        a1, b1 = max(a0 + 1, min(gh, math.ceil(r1 / g))), max(b0 + 1, min(gw, math.ceil(c1 / g)))
        m = torch.zeros(len(c.iou), gh, gw, dtype=torch.bool)
        if len(c.iou):
            small = torch.nn.functional.interpolate(
                c.logits.float()[:, None], size=(a1 - a0, b1 - b0), mode="bilinear",
                align_corners=False)
            m[:, a0:a1, b0:b1] = small[:, 0] > 0
        out.append(m)
    return torch.cat(out)


def _crop_points(crop, n: int, region: np.ndarray | None) -> np.ndarray:
    """The crop's grid in crop pixels, without the points outside ``region``."""
    _, r0, c0, r1, c1 = crop
    pts = point_grid(n, (r1 - r0, c1 - c0))
    if region is None:
        return pts
    rr = np.clip(np.rint(pts[:, 0]).astype(int) + r0, 0, region.shape[0] - 1)
    cc = np.clip(np.rint(pts[:, 1]).astype(int) + c0, 0, region.shape[1] - 1)
    return pts[region[rr, cc]]


def iter_segment_everything(predictor_or_model, image, *, intensity_range=None, region=None,
                            occupied=None, first_id: int = 1, bfloat16: bool | None = None,
                            options: AutomaticOptions | None = None, **option_values):
    """Generator form of ``segment_everything``: yields (points done, points in all) after
    each decoded batch and returns the ``AutomaticResult`` (``StopIteration.value``);
    closing it stops the work at the next batch."""
    start = time.perf_counter()
    if options is not None and option_values:
        raise TypeError("pass either options= or single option values, not both")
    opts = options if options is not None else AutomaticOptions(**option_values)
    predictor = _predictor(predictor_or_model, bfloat16)
    arr = T.check_image(image)
    H, W = arr.shape[:2]
    region = _check_mask(region, (H, W), "region")
    occupied = _check_mask(occupied, (H, W), "occupied")
    if int(first_id) != first_id or first_id < 1:
        raise ValueError(f"first_id must be a whole number >= 1, got {first_id!r}")
    rng = _frame_range(arr, intensity_range)
    crops = crop_boxes((H, W), opts.crop_layers, opts.crop_overlap)
    grids = [_crop_points(c, opts.points_per_side, region) for c in crops]
    total = int(sum(len(g) for g in grids))
    done = [0]

    def tick(n: int) -> None:
        done[0] += n

    yield 0, total
    per_crop, n_candidates = [], 0
    for crop, pts in zip(crops, grids):
        if not len(pts):
            continue
        _, r0, c0, r1, c1 = crop
        steps = _decode_crop(predictor, arr[r0:r1, c0:c1], rng, pts, crop, opts, (H, W), tick)
        while True:
            try:
                next(steps)
            except StopIteration as stop:
                cand, n_before = stop.value
                break
            yield done[0], total
        per_crop.append(cand)
        n_candidates += n_before
    cands = _merge(per_crop, (H, W), opts)
    result = _paint(cands, (H, W), opts, region, occupied, int(first_id), predictor)
    return AutomaticResult(*result, n_points=total, n_candidates=n_candidates,
                           seconds=time.perf_counter() - start, options=opts)


def _merge(per_crop: list[_Candidates], frame_hw, opts) -> list[tuple[_Candidates, int]]:
    """NMS across crops (when there are several), then (``drop_unions``) masks that are two
    or more others together left out; -> [(crop candidates, index)] best first."""
    flat = [(c, i) for c in per_crop for i in range(len(c.iou))]
    if not flat:
        return []
    scores = torch.cat([c.iou for c in per_crop])
    grid = _frame_grid_masks(per_crop, frame_hw) if len(per_crop) > 1 or opts.drop_unions \
        else None
    if len(per_crop) > 1:
        kept = mask_nms(grid, scores, opts.nms_threshold)
    else:
        kept = np.argsort(-scores.numpy(), kind="stable")
    if opts.drop_unions:
        unions = unions_of_others(grid[torch.as_tensor(kept)])
        kept = kept[~unions]
    return [flat[int(k)] for k in kept]


def _paint(cands, frame_hw, opts: AutomaticOptions, region, occupied, first_id, predictor):
    """Paint the kept masks, best first, onto pixels still free; -> the result's arrays."""
    H, W = frame_hw
    labels = np.zeros((H, W), np.int32)
    free = np.ones((H, W), bool)
    if region is not None:
        free &= region
    if occupied is not None:
        free &= ~occupied
    rows = {"ids": [], "iou": [], "stability": [], "object_score": [], "area": [], "points": []}
    next_id = first_id
    low = 4 * (predictor.image_size // predictor.model.config.backbone_stride)
    for s in range(0, len(cands), PAINT_CHUNK):
        chunk = cands[s:s + PAINT_CHUNK]
        for c, i in chunk:
            r0, c0, r1, c1 = c.box
            logits = c.logits[i:i + 1].float()[None]  # (1, 1, low, low)
            logits = postprocess_logits(
                logits, max_hole_area=_low_res_area(opts.max_hole_area, (r1 - r0, c1 - c0), low),
                max_sprinkle_area=_low_res_area(opts.max_sprinkle_area, (r1 - r0, c1 - c0), low))
            mask = T.logits_to_masks(logits[0], (r1 - r0, c1 - c0))[0]
            window = free[r0:r1, c0:c1]
            paint = mask & window
            area = int(paint.sum())
            if area == 0 or area < opts.min_area:
                continue
            labels[r0:r1, c0:c1][paint] = next_id
            window[paint] = False
            rows["ids"].append(next_id)
            rows["iou"].append(float(c.iou[i]))
            rows["stability"].append(float(c.stability[i]))
            rows["object_score"].append(float(c.object_score[i]))
            rows["area"].append(area)
            rows["points"].append(c.points[i])
            next_id += 1
    return (labels, np.asarray(rows["ids"], np.int32), np.asarray(rows["iou"], np.float32),
            np.asarray(rows["stability"], np.float32),
            np.asarray(rows["object_score"], np.float32), np.asarray(rows["area"], np.int64),
            np.asarray(rows["points"], np.float64).reshape(-1, 2))


def segment_everything(predictor_or_model, image, *, intensity_range=None, region=None,
                       occupied=None, first_id: int = 1, bfloat16: bool | None = None,
                       progress=None, cancel=None, options: AutomaticOptions | None = None,
                       **option_values) -> AutomaticResult:
    """Find the objects of one frame: a grid of point prompts decoded in batches on one
    embedding per crop, filtered, de-duplicated and painted into a label image.

    Args:
        predictor_or_model: a ``Sam2Model`` or an ``ImagePredictor`` (its device is used).
        image: (H, W) grey or (H, W, 3), any real dtype.
        intensity_range: (lo, hi) mapped to 0 and 1 (e.g. napari contrast limits); default
            the frame's min and max (uint8: / 255), the same for every crop.
        region: optional (H, W) bool: only grid points inside it are prompted and labels are
            painted only inside it.
        occupied: optional (H, W) bool: pixels never painted (e.g. existing labels).
        first_id: the first label id (e.g. one above the existing labels' maximum).
        bfloat16: as ``ImagePredictor`` (used only when a model is given).
        progress: optional ``progress(done, total)`` in grid points, after each batch.
        cancel: optional ``cancel() -> bool``; True stops at the next batch with
            ``SegmentationCancelled``.
        options: an ``AutomaticOptions``, or the same fields as keywords
            (``points_per_side=32, iou_threshold=0.8, ...``). A value that cannot work raises
            ``InvalidOptionError`` naming it.

    Returns:
        ``AutomaticResult``.
    """
    steps = iter_segment_everything(predictor_or_model, image, intensity_range=intensity_range,
                                    region=region, occupied=occupied, first_id=first_id,
                                    bfloat16=bfloat16, options=options, **option_values)
    while True:
        try:
            done, total = next(steps)
        except StopIteration as stop:
            return stop.value
        if progress is not None:
            progress(done, total)
        if cancel is not None and cancel():
            steps.close()
            raise SegmentationCancelled(f"segment everything cancelled after {done} of "
                                        f"{total} grid points")
