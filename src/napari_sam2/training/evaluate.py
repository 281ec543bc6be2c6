"""Quality of a model on held-out synthetic sequences, measured through the engine's public API.

* ``click_and_box_iou``: one positive click (the most interior pixel of each cell) and the
  bounding box of each cell on single frames, through ``ImagePredictor``;
* ``propagation_jf``: one click on frame 0, propagated by ``TrackingSession``; mean J&F over the
  following frames (J = IoU, F = boundary F-measure as in DAVIS), plus whether the cell that
  leaves the field is reported absent while it is out and found again when it is back.

Held-out data use seeds from ``HELD_OUT_SEED`` on, which training never draws (training seeds are
drawn by a generator from the run seed; the chance of a collision is negligible but the
sequences here use a fixed shape and cell count too).

How many sequences: a mean over a few sequences moves a lot with the sequence drawn (two frames of
one ambiguous pair of overlapping cells can move the box figure of 4 sequences by 0.025), so the
standard sets are ``IMAGE_SEQUENCES`` and ``VIDEO_SEQUENCES`` sequences, and ``bootstrap_ci``
gives a confidence interval that resamples whole sequences (objects of one sequence are not
independent: the same cells appear on both frames).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from napari_sam2.data.synthetic import make_cell_timelapse

__all__ = ["HELD_OUT_SEED", "IMAGE_SEQUENCES", "VIDEO_SEQUENCES", "Quality", "interior_point",
           "jaccard", "boundary_f", "touches_another", "bootstrap_ci", "click_and_box_iou", "click_and_track",
           "propagation_jf", "measure_quality"]

HELD_OUT_SEED = 1_000_003
IMAGE_SEQUENCES = 32  # standard click/box set: 32 sequences x 2 frames, about 380 objects
VIDEO_SEQUENCES = 16  # standard propagation set: 16 sequences of 16 frames


def interior_point(mask: np.ndarray) -> tuple[int, int]:
    """(row, col) of the pixel farthest from the mask's border (a natural single click)."""
    dist = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    r, c = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(r), int(c)


def jaccard(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU of two bool masks; 1.0 when both are empty."""
    union = np.logical_or(pred, gt).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, gt).sum() / union)


def _boundary(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def boundary_f(pred: np.ndarray, gt: np.ndarray, bound_th: float = 0.008) -> float:
    """DAVIS boundary F-measure with a tolerance of ``bound_th`` x the image diagonal."""
    if not pred.any() and not gt.any():
        return 1.0
    if not pred.any() or not gt.any():
        return 0.0
    tol = max(1, int(np.ceil(bound_th * np.hypot(*gt.shape))))
    bp, bg = _boundary(pred), _boundary(gt)
    disk = ndimage.generate_binary_structure(2, 1)
    gt_zone = ndimage.binary_dilation(bg, disk, iterations=tol)
    pred_zone = ndimage.binary_dilation(bp, disk, iterations=tol)
    precision = (bp & gt_zone).sum() / max(bp.sum(), 1)
    recall = (bg & pred_zone).sum() / max(bg.sum(), 1)
    return 0.0 if precision + recall == 0 else float(2 * precision * recall / (precision + recall))


@dataclass
class Quality:
    """Measured figures (means over objects; ``per_sequence`` keeps the detail)."""

    click_iou: float = float("nan")
    box_iou: float = float("nan")
    jf: float = float("nan")
    j: float = float("nan")
    f: float = float("nan")
    reappear_found: float = float("nan")  # share of leave-and-return cells found again
    reappear_count: int = 0  # how many leave-and-return cells that share is over
    absent_correct: float = float("nan")  # share of their out-of-field frames predicted empty
    per_sequence: list = field(default_factory=list)  # seed, j, f, n (object-frames) each


def _sequence(seed: int, n_frames: int):
    return make_cell_timelapse(n_frames=n_frames, shape=(192, 256), n_cells=6, seed=seed)


def touches_another(labels: np.ndarray, k: int, gap: int = 2) -> bool:
    """Whether cell ``k`` of a (H, W) label image lies within ``gap`` pixels of another cell."""
    mask = labels == k
    ring = ndimage.binary_dilation(mask, iterations=gap) & ~mask
    return bool((labels[ring] > 0).any())


def bootstrap_ci(means, counts, *, level: float = 0.95, n_boot: int = 4000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of a pooled mean, resampling whole groups (sequences).

    Args:
        means: (G,) mean of each group; counts: (G,) how many values each mean is over.
    Returns:
        (low, high) of the pooled mean sum(counts * means) / sum(counts); (nan, nan) for fewer
        than 2 groups.
    """
    means = np.asarray(means, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    if means.shape != counts.shape or means.ndim != 1:
        raise ValueError("means and counts must be 1-D arrays of the same length")
    if means.size < 2:
        return float("nan"), float("nan")
    picks = np.random.default_rng(seed).integers(0, means.size, size=(n_boot, means.size))
    pooled = (means[picks] * counts[picks]).sum(1) / counts[picks].sum(1)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(pooled, [tail, 100 - tail])
    return float(low), float(high)


def click_and_box_iou(model, *, n_sequences: int = IMAGE_SEQUENCES, frames=(0, 8),
                      seed: int = HELD_OUT_SEED, details: list | None = None,
                      window=None) -> tuple[float, float]:
    """Mean IoU of one interior click (best of the multimask output) and of the cell's box.

    ``window``: the image predictor's window setting (None: whole frames; docs/image_predictor.md, *Windows*).

    ``details``, if given, receives one dict per object: seed, frame, label, area, whether it
    touches another cell, click IoU and box IoU.
    """
    from napari_sam2.engine.image_predictor import ImagePredictor

    predictor = ImagePredictor(model)
    clicks, boxes = [], []
    for i in range(n_sequences):
        images, labels = _sequence(seed + i, max(frames) + 1)
        for t in frames:
            predictor.set_image(images[t], window=window)
            for k in np.unique(labels[t]):
                if k == 0:
                    continue
                gt = labels[t] == k
                if gt.sum() < 50:  # a sliver at the border is not a fair single-click target
                    continue
                r, c = interior_point(gt)
                pred = predictor.predict(points=[[r, c]], labels=[1], multimask_output=True)
                clicks.append(jaccard(pred.best_in_frame(gt.shape), gt))
                rows, cols = np.nonzero(gt)
                box = (rows.min(), cols.min(), rows.max(), cols.max())
                pred = predictor.predict(box=box, multimask_output=False)
                boxes.append(jaccard(pred.best_in_frame(gt.shape), gt))
                if details is not None:
                    details.append({"seed": seed + i, "frame": t, "label": int(k),
                                    "area": int(gt.sum()),
                                    "touching": touches_another(labels[t], k),
                                    "click_iou": clicks[-1], "box_iou": boxes[-1]})
    return float(np.mean(clicks)), float(np.mean(boxes))


def click_and_track(model, images, labels, *, min_area: int,
                    window=None) -> tuple[list[int], dict]:
    """Click each object of ``labels[0]`` with at least ``min_area`` pixels at its most
    interior pixel and track all of them forward through ``images`` (T, H, W).

    Returns (object ids, {frame: {object id: (H, W) bool mask}}) of the propagation."""
    from napari_sam2.engine import TrackingSession

    session = TrackingSession(model, images, window=window)
    ids = [int(k) for k in np.unique(labels[0]) if k != 0 and (labels[0] == k).sum() >= min_area]
    for k in ids:
        r, c = interior_point(labels[0] == k)
        session.add_points(0, k, [[r, c]], [1])
    outputs = {}
    for result in session.propagate(0):
        outputs[result.frame] = dict(zip(result.obj_ids, result.masks))
    return ids, outputs


def propagation_jf(model, *, n_sequences: int = VIDEO_SEQUENCES, n_frames: int = 16,
                   seed: int = HELD_OUT_SEED + 100, window=None) -> Quality:
    """One interior click per cell on frame 0, propagated forward through ``n_frames``
    (``window``: the session's window setting; None: whole frames)."""
    js, fs, found, absent_ok, per_seq = [], [], [], [], []
    for i in range(n_sequences):
        images, labels = _sequence(seed + i, n_frames)
        ids, outputs = click_and_track(model, images, labels, min_area=50, window=window)
        seq_j, seq_f = [], []
        for k in ids:
            gone = [t for t in range(1, n_frames) if not (labels[t] == k).any()]
            for t in range(1, n_frames):
                pred = outputs.get(t, {}).get(k, np.zeros(labels[t].shape, bool))
                gt = labels[t] == k
                seq_j.append(jaccard(pred, gt))
                seq_f.append(boundary_f(pred, gt))
            if gone:  # this cell leaves the field: is it absent while out and found after?
                absent_ok += [not outputs.get(t, {}).get(k, np.zeros(1, bool)).any()
                              for t in gone]
                back = [t for t in range(gone[-1] + 1, n_frames) if (labels[t] == k).sum() >= 50]
                if back:
                    last = back[-1]
                    found.append(jaccard(outputs.get(last, {}).get(k, np.zeros(1, bool)),
                                         labels[last] == k) > 0.5)
        js += seq_j
        fs += seq_f
        per_seq.append({"seed": seed + i, "j": float(np.mean(seq_j)), "f": float(np.mean(seq_f)),
                        "n": len(seq_j)})
    q = Quality(j=float(np.mean(js)), f=float(np.mean(fs)), per_sequence=per_seq)
    q.jf = (q.j + q.f) / 2
    q.reappear_found = float(np.mean(found)) if found else float("nan")
    q.reappear_count = len(found)
    q.absent_correct = float(np.mean(absent_ok)) if absent_ok else float("nan")
    return q


def measure_quality(model, *, n_image_sequences: int = IMAGE_SEQUENCES,
                    n_video_sequences: int = VIDEO_SEQUENCES,
                    n_frames: int = 16) -> Quality:
    """All figures of issue 5 on held-out sequences."""
    q = propagation_jf(model, n_sequences=n_video_sequences, n_frames=n_frames)
    q.click_iou, q.box_iou = click_and_box_iou(model, n_sequences=n_image_sequences)
    return q
