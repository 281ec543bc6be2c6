"""Cell divisions in a tracking session: by hand (``divide``) and found automatically.

SAM 2 has no notion of a division: the mask of a dividing cell stretches over both daughters,
then follows one of them. Here a division ends the parent's track on the frame before and
starts one new object per daughter, seeded with its mask (a mask prompt) on the division frame;
``session.lineage`` records the parent.

Automatic detection (``propagate_with_divisions``, used by ``session.propagate(divisions=...)``)
watches each object's mask while propagating forward. ``DivisionRule`` says when a mask has
split: its two largest 8-connected components each cover at least ``min_fraction`` of the
object's area on the last frame before the split and at least ``min_pixels``, and they are at
least ``min_gap`` pixels apart, and neither lies mostly (more than ``max_overlap``) on another
object's mask (a mask that also grabbed a neighbour has not divided). When that holds on ``confirm_frames`` frames in a row, the
division is applied at the first of them (daughters seeded from its two components) and the
daughters are tracked over the frames already done, then all objects go on together. A daughter
(or any object) younger than ``min_age`` frames is not divided again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from napari_sam2.engine.types import FrameResult

__all__ = ["DivisionRule", "divide", "find_split", "propagate_with_divisions"]


# ---------------------------------------------------------------------- by hand
def _check_daughters(daughters, frame_shape, parent_id, known) -> dict[int, np.ndarray]:
    if not isinstance(daughters, dict) or not daughters:
        raise ValueError("daughters must be a non-empty dict {new object id: (H, W) mask}")
    out = {}
    for oid, mask in daughters.items():
        if isinstance(oid, (bool, np.bool_)) or not isinstance(oid, (int, np.integer)):
            raise TypeError(f"daughter ids must be integers, got {oid!r}")
        oid = int(oid)
        if oid == parent_id or oid in known:
            raise ValueError(f"daughter id {oid} is already an object; choose a new id "
                             f"(objects: {sorted(known)})")
        m = np.asarray(mask)
        if m.shape != tuple(frame_shape):
            raise ValueError(f"the mask of daughter {oid} must have the frame's shape "
                             f"{tuple(frame_shape)}, got {m.shape}")
        if m.dtype != bool:
            if not np.isin(m, (0, 1)).all():
                raise ValueError(f"the mask of daughter {oid} must be bool or 0/1")
            m = m.astype(bool)
        if not m.any():
            raise ValueError(f"the mask of daughter {oid} is empty; mark the daughter's pixels")
        out[oid] = m
    return out


def _truncate(track, frame: int) -> dict:
    """Remove ``track``'s prompts and outputs on frames >= ``frame``; return what was removed
    (for ``_restore``)."""
    removed = {}
    for name in ("points", "cond", "non_cond", "temp_cond", "temp_non_cond", "tracked"):
        d = getattr(track, name)
        removed[name] = {f: d.pop(f) for f in [f for f in d if f >= frame]}
    removed["mask_frames"] = {f for f in track.mask_frames if f >= frame}
    track.mask_frames -= removed["mask_frames"]
    return removed


def _restore(track, removed: dict) -> None:
    for name, items in removed.items():
        if name == "mask_frames":
            track.mask_frames |= items
        else:
            getattr(track, name).update(items)


def divide(session, frame: int, parent_id: int, daughters) -> FrameResult:
    """``parent_id`` divides on ``frame`` into new objects seeded with ``daughters``' masks.

    Args:
        session: a ``TrackingSession``.
        frame: the first frame on which the daughters are apart.
        parent_id: the dividing object; it must have a prompt before ``frame``.
        daughters: {new object id: (H, W) bool mask on ``frame``}, usually two.

    The parent's prompts and outputs on ``frame`` and later are removed and it is no longer
    tracked there (its lineage ends on ``frame - 1``); each daughter gets a mask prompt on
    ``frame`` and is never tracked before it. Nothing changes on error.

    Returns:
        the ``FrameResult`` of ``frame`` (all objects there).
    """
    st = session.state
    f = st.check_frame(frame)
    with st.lock:
        parent = st.track(parent_id)
        masks = _check_daughters(daughters, st.frame_shape, parent.obj_id, st.tracks)
        if not any(c < f for c in parent.conditioning_frames()):
            raise ValueError(f"object {parent.obj_id} has no prompt before frame {f}, so "
                             "nothing would be left of its track; a division needs the parent "
                             "prompted on an earlier frame")
        if parent.obj_id not in st.lineage:
            st.lineage.add(parent.obj_id, min(parent.conditioning_frames()))
        saved_lineage = st.lineage.copy()
        removed = _truncate(parent, f)
        try:
            st.lineage.divide(parent.obj_id, f, list(masks))
            for oid, mask in masks.items():
                session.add_mask(f, oid, mask)
        except BaseException:
            for oid in masks:
                st.tracks.pop(oid, None)
            _restore(parent, removed)
            st.lineage = saved_lineage
            raise
        return session.result(f)


# ---------------------------------------------------------------------- automatic
@dataclass(frozen=True)
class DivisionRule:
    """When a tracked mask counts as divided (see the module docstring).

    Attributes:
        confirm_frames: frames in a row on which the mask must be split (>= 1).
        min_fraction: each of the two parts covers at least this share of the object's area
            on its last frame before the split.
        min_pixels: each part has at least this many pixels.
        min_gap: the two parts are at least this many pixels apart (edge to edge).
        min_age: frames an object must have been tracked (since its first prompt, or its
            division) before it may divide.
        max_overlap: a part with more than this share of its pixels on other objects' masks
            is a neighbour grabbed by the mask, not a daughter.
        first_id: daughters get the next ids above every object of the session and not below
            this one (a caller whose labels hold other ids, e.g. painted by hand, passes one
            above them, so that a daughter never takes a label already in use).
    """

    confirm_frames: int = 2
    min_fraction: float = 0.2
    min_pixels: int = 20
    min_gap: float = 1.0
    min_age: int = 4
    max_overlap: float = 0.5
    first_id: int = 1

    def __post_init__(self) -> None:
        if int(self.confirm_frames) != self.confirm_frames or self.confirm_frames < 1:
            raise ValueError(f"confirm_frames must be an integer >= 1, got {self.confirm_frames}")
        if not 0 < self.min_fraction < 0.5:
            raise ValueError(f"min_fraction must be in (0, 0.5), got {self.min_fraction}")
        if not 0 < self.max_overlap <= 1:
            raise ValueError(f"max_overlap must be in (0, 1], got {self.max_overlap}")
        if isinstance(self.first_id, bool) or int(self.first_id) != self.first_id \
                or self.first_id < 1:
            raise ValueError(f"first_id must be an integer >= 1, got {self.first_id}")
        if self.min_pixels < 1 or self.min_gap < 0 or self.min_age < 1:
            raise ValueError("min_pixels and min_age must be >= 1 and min_gap >= 0, got "
                             f"{self.min_pixels}, {self.min_age}, {self.min_gap}")


_EIGHT = np.ones((3, 3), bool)


def find_split(mask: np.ndarray, reference_area: float, rule: DivisionRule,
               others: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """The two parts of ``mask`` (H, W) bool if it is split by ``rule``'s measure, else None.

    ``reference_area``: the object's area before the split; ``others``: (H, W) bool, the other
    objects' masks on the frame. Pixels of smaller components go to the nearer part, so the
    two parts together are the whole mask.
    """
    comps, n = ndimage.label(mask, structure=_EIGHT)
    if n < 2:
        return None
    areas = np.bincount(comps.ravel())[1:]
    order = np.argsort(areas)[::-1]
    big = [int(order[0]) + 1, int(order[1]) + 1]
    need = max(rule.min_pixels, rule.min_fraction * reference_area)
    if areas[big[1] - 1] < need:
        return None
    a, b = comps == big[0], comps == big[1]
    if others is not None and max((p & others).sum() / p.sum() for p in (a, b)) > \
            rule.max_overlap:
        return None
    dist_a = ndimage.distance_transform_edt(~a)
    if dist_a[b].min() - 1 < rule.min_gap:
        return None
    if n > 2:  # small bits go to the nearer part
        dist_b = ndimage.distance_transform_edt(~b)
        rest = mask & ~a & ~b
        a = a | (rest & (dist_a <= dist_b))
        b = b | (rest & (dist_a > dist_b))
    return a, b


class _Watch:
    """Per-object state of the detection: area before the split, split frames in a row."""

    def __init__(self) -> None:
        self.area = 0.0
        self.age = 0
        self.splits: list[tuple[int, np.ndarray, np.ndarray]] = []


def _next_ids(session, n: int, first_id: int = 1) -> list[int]:
    top = max([int(first_id) - 1, *session.obj_ids, *session.lineage.tracks])
    return list(range(top + 1, top + 1 + n))


def propagate_with_divisions(session, start: int | None = None, *, rule: DivisionRule,
                             max_frames: int | None = None, obj_ids=None,
                             stop_after_absent: int | None = None) -> Iterator[FrameResult]:
    """``session.propagate`` forward, applying divisions found by ``rule`` as it goes.

    Yields a ``FrameResult`` (all objects) per frame; after a division the frames from the
    division on are yielded again with the daughters (a consumer that writes labels per frame
    just overwrites them). Daughters get the next free object ids. Arguments as
    ``session.propagate``; ``obj_ids`` limits which objects are tracked and watched (daughters
    of watched objects are watched too).
    """
    ids = None if obj_ids is None else {int(o) for o in obj_ids}
    watch: dict[int, _Watch] = {}
    end = session.num_frames - 1
    run = session.propagate(start, max_frames=max_frames, obj_ids=obj_ids,
                            stop_after_absent=stop_after_absent)
    first = None
    while run is not None:
        resumed, run = run, None
        for result in resumed:
            first = result.frame if first is None else first
            if max_frames is not None:
                end = min(end, first + int(max_frames))
            yield result
            found = _observe(session, result, watch, rule)
            if found is None:
                continue
            resumed.close()
            parent, split_frame, parts = found
            daughters = dict(zip(_next_ids(session, 2, rule.first_id), parts))
            divide(session, split_frame, parent, daughters)
            if ids is not None:
                ids |= set(daughters)
            for oid in daughters:
                watch[oid] = _Watch()
            watch.pop(parent, None)
            # the daughters over the frames already done, then everything on from there
            if result.frame > split_frame:
                yield session.result(split_frame)
                for r in session.propagate(split_frame + 1, max_frames=result.frame
                                           - split_frame - 1, obj_ids=list(daughters)):
                    yield session.result(r.frame)
                    _observe(session, session.result(r.frame), watch, rule,
                             only=set(daughters))
            else:
                yield session.result(split_frame)
            if result.frame < end:
                run = session.propagate(result.frame + 1, max_frames=end - result.frame - 1,
                                        obj_ids=None if ids is None else sorted(ids),
                                        stop_after_absent=stop_after_absent)
            break


def _observe(session, result: FrameResult, watch: dict[int, _Watch], rule: DivisionRule,
             only: set[int] | None = None):
    """Update the watch with ``result``; (parent, first split frame, (a, b)) when a split is
    confirmed, else None."""
    masks = result.masks
    for k, oid in enumerate(result.obj_ids):
        if only is not None and oid not in only:
            continue
        w = watch.setdefault(oid, _Watch())
        mask = masks[k]
        w.age += 1
        split = None
        if w.age > rule.min_age and w.area > 0:
            split = find_split(mask, w.area, rule, np.delete(masks, k, axis=0).any(0))
        if split is None:
            w.splits.clear()
            area = float(mask.sum())
            if area > 0:
                w.area = area
            continue
        w.splits.append((result.frame, *split))
        if len(w.splits) >= rule.confirm_frames:
            frame, a, b = w.splits[0]
            w.splits.clear()
            return oid, frame, (a, b)
    return None
