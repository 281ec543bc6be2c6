"""Held-out sets for the cases of issue 22: objects that end along z, stage drift, small objects.

Each function measures one figure through the engine's public API on fixed held-out seeds
(``CASE_SEED`` on; training draws its seeds from a generator and never these) and returns a
``CaseResult``: the pooled figure, per-sequence means and counts for ``bootstrap_ci`` and for
paired comparisons, and the issue's target.

* ``zstack_quality``: nuclei volumes whose objects start and end at their own depths; one click
  on each object's largest slice, tracked up and down the whole stack. Two figures: the share of
  slices outside the object that are predicted empty, and the 3D IoU per object.
* ``drift_jf``: time-lapses of textured nuclei under a stage drift of 4 px per frame (plus the
  nuclei's own motion); one click per nucleus on frame 0, 16 frames, J&F.
* ``small_click_iou``: 512 x 512 fields of 24-40 px nuclei, i.e. 12-20 px on the 256 px input
  of ``sam2_demo``; one interior click per nucleus, whole frame, IoU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from napari_sam2.data.nuclei import make_nuclei_timelapse, make_nuclei_volume
from napari_sam2.training.evaluate import boundary_f, click_and_track, interior_point, jaccard

__all__ = ["CASE_SEED", "CaseResult", "Z_STOP_AFTER_ABSENT", "click_masks", "drift_jf",
           "small_click_iou", "track_scores", "volume_scores", "zstack_quality"]

CASE_SEED = 2_000_017
Z_STOP_AFTER_ABSENT = 3  # the plugin's default along z (docs/tracking.md, early stop)


@dataclass
class CaseResult:
    """One held-out figure.

    Attributes:
        name: figure name; value: pooled mean; target: the issue's bar (value >= target);
        means, counts: per-sequence means and how many values each is over;
        extra: other figures measured on the way (name -> value).
    """

    name: str
    value: float
    target: float
    means: list = field(default_factory=list)
    counts: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)


def _pooled(means, counts) -> float:
    return float(np.dot(means, counts) / max(np.sum(counts), 1))


def volume_scores(model, volume: np.ndarray, labels: np.ndarray, *,
                  stop_after_absent: int | None = Z_STOP_AFTER_ABSENT, min_area: int = 1,
                  intensity_range=None) -> tuple[list[bool], list[float]]:
    """Click every object of a (Z, H, W) ``labels`` stack once (its most interior pixel, on
    the slice where it is largest) and track it from there to both ends of ``volume``.

    Returns (for every slice outside an object, whether its prediction there is empty; the 3D
    IoU of every object). A slice the tracking stopped before (``stop_after_absent``, the
    plugin's z default; None tracks every slice, as Meta's predictor) counts as empty, which
    is what the plugin's labels show there. Objects smaller than ``min_area`` pixels on their
    largest slice are left out. ``intensity_range``: as ``TrackingSession``'s (None: each
    slice by its own minimum and maximum; the plugin passes the layer's contrast limits,
    one range for the whole stack).
    """
    from napari_sam2.engine import TrackingSession

    session = TrackingSession(model, volume, intensity_range=intensity_range)
    starts = {}
    for k in (int(k) for k in np.unique(labels) if k != 0):
        areas = (labels == k).sum((1, 2))
        if areas.max() < min_area:
            continue
        starts[k] = int(np.argmax(areas))
        r, c = interior_point(labels[starts[k]] == k)
        session.add_points(starts[k], k, [[r, c]], [1])
    empties, ious = [], []
    for k, z in starts.items():
        pred = np.zeros(labels.shape, bool)
        pred[z] = session.result(z, [k]).masks[0]
        for reverse in (False, True):
            for result in session.propagate(z, reverse=reverse, obj_ids=[k],
                                            stop_after_absent=stop_after_absent):
                if k in result.obj_ids:
                    pred[result.frame] = result.masks[result.obj_ids.index(k)]
        gt = labels == k
        empties += [bool(e) for e in ~pred[~gt.any((1, 2))].any((1, 2))]
        ious.append(jaccard(pred, gt))
    return empties, ious


def zstack_quality(model, *, n_volumes: int = 12, shape=(48, 192, 192), n_objects: int = 12,
                   stop_after_absent: int | None = Z_STOP_AFTER_ABSENT,
                   seed: int = CASE_SEED) -> tuple[CaseResult, CaseResult]:
    """Slices outside each object predicted empty (target 0.95), and 3D IoU (target 0.75),
    on volumes of nuclei packed in 3D (``make_nuclei_volume(stacked=True)``: one nucleus may
    lie right above another), ``volume_scores`` on each. With ``stop_after_absent=None`` the
    names end in " (no early stop)" and carry no target (NaN)."""
    empty_means, empty_counts, iou_means, iou_counts = [], [], [], []
    for i in range(n_volumes):
        volume, labels = make_nuclei_volume(shape=shape, n_objects=n_objects, diameter=(30, 50),
                                            extent=(0.15, 0.4), stacked=True, seed=seed + i)
        empties, ious = volume_scores(model, volume, labels, stop_after_absent=stop_after_absent)
        empty_means.append(float(np.mean(empties)) if empties else 1.0)
        empty_counts.append(len(empties))
        iou_means.append(float(np.mean(ious)))
        iou_counts.append(len(ious))
    # the bars are for the plugin's default; without the early stop the figures show
    # what the model alone decides, for information
    tag, bars = ((" (no early stop)", (float("nan"),) * 2) if stop_after_absent is None
                 else ("", (0.95, 0.75)))
    empty = CaseResult("z: slices outside the object empty" + tag,
                       _pooled(empty_means, empty_counts), bars[0], empty_means, empty_counts,
                       {"slices": int(np.sum(empty_counts))})
    iou = CaseResult("z: 3D IoU" + tag, _pooled(iou_means, iou_counts), bars[1], iou_means,
                     iou_counts, {"objects": int(np.sum(iou_counts))})
    return empty, iou


def track_scores(model, images: np.ndarray, labels: np.ndarray, *,
                 min_area: int = 80) -> tuple[list[float], list[float]]:
    """(J, F) of every object-frame after frame 0 when each object of ``labels[0]`` with at
    least ``min_area`` pixels is clicked once on frame 0 and tracked forward."""
    ids, outputs = click_and_track(model, images, labels, min_area=min_area)
    js, fs = [], []
    for k in ids:
        for t in range(1, len(images)):
            pred = outputs.get(t, {}).get(k, np.zeros(labels[t].shape, bool))
            gt = labels[t] == k
            js.append(jaccard(pred, gt))
            fs.append(boundary_f(pred, gt))
    return js, fs


def drift_jf(model, *, n_sequences: int = 12, n_frames: int = 16, drift: float = 4.0,
             seed: int = CASE_SEED + 1000) -> CaseResult:
    """Mean J&F of nuclei clicked on frame 0 and tracked under a stage drift of ``drift`` px
    per frame (random direction per sequence) plus their own motion (0.5-2.5 px per frame)."""
    means, counts, js, fs = [], [], [], []
    for i in range(n_sequences):
        angle = np.random.default_rng(seed + i).uniform(0, 2 * np.pi)
        images, labels = make_nuclei_timelapse(
            n_frames=n_frames, shape=(192, 256), n_cells=8, diameter=(24, 48),
            drift=(drift * np.sin(angle), drift * np.cos(angle)), seed=seed + i)
        seq_j, seq_f = track_scores(model, images, labels)
        js += seq_j
        fs += seq_f
        means.append(float(np.mean(seq_j) + np.mean(seq_f)) / 2)
        counts.append(len(seq_j))
    return CaseResult(f"drift {drift:g} px/frame: J&F", _pooled(means, counts), 0.8, means,
                      counts, {"J": float(np.mean(js)), "F": float(np.mean(fs)),
                               "object-frames": len(js)})


def click_masks(predictor, image: np.ndarray, labels: np.ndarray, *, min_area: float,
                window=None) -> tuple[list[float], int]:
    """One click on the most interior pixel of every object of the (H, W) ``labels`` with at
    least ``min_area`` pixels, best of the multimask output, on ``image`` set in ``predictor``
    (an ``ImagePredictor``; ``window`` as its ``set_image``'s).

    Returns (IoU of every object, how many masks came out empty)."""
    predictor.set_image(image, window=window)
    ious, empty = [], 0
    for k in np.unique(labels):
        gt = labels == k
        if k == 0 or gt.sum() < min_area:
            continue
        pred = predictor.predict(points=[interior_point(gt)], labels=[1], multimask_output=True)
        mask = pred.best_in_frame(gt.shape)
        empty += not mask.any()
        ious.append(jaccard(mask, gt))
    return ious, empty


def small_click_iou(model, *, n_images: int = 12, shape=(512, 512), diameter=(24.0, 40.0),
                    n_cells: int = 40, seed: int = CASE_SEED + 2000) -> CaseResult:
    """Mean IoU of one interior click per nucleus (best of the multimask output, whole frame)
    on fields of 24-40 px nuclei in 512 px frames (12-20 px on the 256 px input of sam2_demo)."""
    from napari_sam2.engine.image_predictor import ImagePredictor

    predictor = ImagePredictor(model)
    means, counts, empty = [], [], 0
    for i in range(n_images):
        images, labels = make_nuclei_timelapse(n_frames=1, shape=shape, n_cells=n_cells,
                                               diameter=diameter, spacing=1.1, seed=seed + i)
        # nuclei cut by the border to less than half the smallest one are left out
        ious, n_empty = click_masks(predictor, images[0], labels[0],
                                    min_area=0.5 * np.pi * (diameter[0] / 2) ** 2)
        empty += n_empty
        means.append(float(np.mean(ious)))
        counts.append(len(ious))
    scale = model.config.image_size / max(shape)
    return CaseResult(f"small objects ({diameter[0] * scale:g}-{diameter[1] * scale:g} px on "
                      f"the input): click IoU", _pooled(means, counts), 0.75, means, counts,
                      {"objects": int(np.sum(counts)), "empty masks": empty})
