"""The propagation loop of ``TrackingSession`` (Meta's ``propagate_in_video``).

Both functions work on the session's ``TrackingState`` (``tracking_state.py``), never on the
session itself. ``plan_propagation`` validates the request and fixes the frame order before
anything changes; ``run_propagation`` is the generator: it first moves pending prompt outputs
into the memory banks (Meta's preflight), then for each frame runs the objects that have no
conditioning output there (batched by memory size on GPUs, one by one on CPU; the start of
memory attention that reads only the frame is computed once for all of them), stores their
outputs, evicts memories that fell out of the window and yields the frame's result. Each frame
is committed as a whole under the state's lock, and nothing is held across a ``yield``, so
closing the generator at any point leaves a consistent session.

With ``stop_after_absent=N`` an ``EarlyStop`` follows each object's object scores along the
run: after N frames in a row with a score <= 0 the object is left out of the following frames
(nothing computed, nothing stored or changed there, absent from their results) until a frame
where it has a conditioning output (a prompt), which it shows and from which it goes on; the
run ends when every object has stopped and none has such a frame ahead.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import numpy as np
import torch

from napari_sam2.engine.object_track import ObjectTrack
from napari_sam2.engine.tracking_state import TrackingState
from napari_sam2.engine.types import FrameResult
from napari_sam2.engine.window_tracking import follow_window


def check_stop_after_absent(value) -> int | None:
    """``value`` as a positive int or None, or a ValueError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"stop_after_absent must be an integer >= 1 (frames in a row without "
                         f"the object) or None (never stop), got {value!r}")
    return int(value)


class EarlyStop:
    """Which objects a run still computes: each stops after ``n`` frames in a row on which
    its object score is <= 0, and starts again on a frame where it has a conditioning output.

    ``n`` None: nobody ever stops (the plain run)."""

    def __init__(self, tracks: list[ObjectTrack], order: list[int], n: int | None) -> None:
        self.n = n
        self.absent = {t.obj_id: 0 for t in tracks}  # frames in a row without the object
        self.stopped: dict[int, int] = {}  # obj id -> the frame after which it stopped
        # the last conditioning frame of each object on the way (to tell when the run can end)
        pos = {f: i for i, f in enumerate(order)}
        self._last_cond = {t.obj_id: max((pos[f] for f in t.cond if f in pos), default=-1)
                           for t in tracks}

    def active(self, tracks: list[ObjectTrack], frame: int) -> list[ObjectTrack]:
        """The tracks to run on ``frame`` (a stopped track with a prompt there starts again)."""
        if not self.stopped:
            return tracks
        for t in tracks:
            if t.obj_id in self.stopped and frame in t.cond:
                del self.stopped[t.obj_id]
                self.absent[t.obj_id] = 0
        return [t for t in tracks if t.obj_id not in self.stopped]

    def update(self, result: FrameResult) -> None:
        """Count the objects of ``result`` (a frame just done) that are absent there."""
        if self.n is None:
            return
        for oid, score in zip(result.obj_ids, result.object_scores):
            self.absent[oid] = self.absent[oid] + 1 if score <= 0 else 0
            if self.absent[oid] >= self.n:
                self.stopped[oid] = result.frame

    def finished(self, index: int) -> bool:
        """True when after position ``index`` of the order nothing is left to compute."""
        return (len(self.stopped) == len(self.absent)
                and all(self._last_cond[o] <= index for o in self.stopped))


def plan_propagation(state: TrackingState, start, reverse, max_frames,
                     obj_ids) -> tuple[list[ObjectTrack], list[int]]:
    """Validate (the caller holds ``state.lock``); return (tracks in id order, frame order)."""
    if not state.tracks:
        raise ValueError("no objects to propagate: add points, a box or a mask first")
    if obj_ids is None:
        ids = sorted(state.tracks)
    else:
        ids = sorted({state.track(o).obj_id for o in obj_ids})
        if not ids:
            raise ValueError("obj_ids is empty: pass None to propagate every object")
    tracks = [state.tracks[i] for i in ids]
    missing = [t.obj_id for t in tracks if not t.conditioning_frames()]
    if missing:
        raise ValueError(f"objects {missing} have no prompts left: add points, a box or a mask "
                         "to them, or remove_object them")
    n = state.num_frames
    if start is None:
        start = min(t.conditioning_frames()[0] for t in tracks)
    else:
        start = state.check_frame(start)
    # Meta's max_frame_num_to_track: k frames beyond start, so start..start+k (k+1 frames)
    if max_frames is not None:
        if isinstance(max_frames, bool) or int(max_frames) != max_frames or max_frames < 0:
            raise ValueError(f"max_frames must be an integer >= 0 (frames beyond start) or None, "
                             f"got {max_frames!r}")
        max_frames = int(max_frames)
    else:
        max_frames = n
    if reverse:
        order = [] if start == 0 else list(range(start, max(start - max_frames, 0) - 1, -1))
    else:
        order = list(range(start, min(start + max_frames, n - 1) + 1))
    return tracks, order


#: Objects per memory-attention call, by device type (absent: all objects with equal memory
#: shapes in one batch). On CPU one object at a time is faster: measured on 2 cores, tiny at
#: 1024, 3 objects, cached features, frames 1-7: 4.1-11.5 s per frame one by one against
#: 4.5-14.5 s batched (the batched attention's working set outgrows the caches).
OBJECTS_PER_CALL: dict[str, int] = {"cpu": 1}

#: Compute the object-independent start of memory attention once per frame for all objects
#: (``Tracker.frame_start``); False runs the whole memory attention per object (the old
#: path, kept for ``benchmarks/bench_shared.py``).
SHARE_ACROSS_OBJECTS = True


def _chunks(members: list[int], device) -> list[list[int]]:
    """``members`` split into the batches that ``Tracker.track`` is called with."""
    size = OBJECTS_PER_CALL.get(torch.device(device).type) or len(members)
    return [members[i:i + size] for i in range(0, len(members), size)]


def _step(state: TrackingState, tracks: list[ObjectTrack], frame: int,
          reverse: bool) -> FrameResult:
    """Compute and commit one frame for ``tracks`` (the caller holds ``state.lock``)."""
    tracker = state.tracker
    direction = -1 if reverse else 1
    outs = [t.cond.get(frame) for t in tracks]
    shown = [None if o is None else o.low_res for o in outs]
    todo = [i for i, o in enumerate(outs) if o is None]
    if todo and state.window is not None:
        _track_in_windows(state, tracks, frame, reverse, todo, outs, shown)
    elif todo:
        # kept while the cache has room (a second run over the same frames encodes nothing
        # again); never at the cost of the clicked and prefetched frames already there
        feats = state.frame_features(frame, store=True, evict=False, direction=direction)
        state.recent = (frame, feats)
        groups = defaultdict(list)
        plans = {}
        for i in todo:
            plans[i] = tracker.plan(tracks[i], frame, reverse, state.num_frames)
            groups[plans[i].shape_key].append(i)
        with torch.inference_mode(), state.autocast():
            start = tracker.frame_start(feats) if SHARE_ACROSS_OBJECTS else None
            for group in groups.values():
                for members in _chunks(group, state.device):
                    new, logits = tracker.track(feats, [plans[i] for i in members],
                                                [tracks[i] for i in members],
                                                state.num_frames, state.memory_of, start)
                    for k, (i, out) in enumerate(zip(members, new)):
                        outs[i] = out
                        shown[i] = logits[k:k + 1]
    window = state.memory_window
    for i, track in enumerate(tracks):
        if i in todo:
            track.non_cond[frame] = outs[i]
        track.tracked[frame] = reverse
        track.evict_memories(lambda t: abs(t - frame) <= window)
    return state.result(frame, tracks, outs, shown)


def _track_in_windows(state: TrackingState, tracks: list[ObjectTrack], frame: int,
                      reverse: bool, todo: list[int], outs: list, shown: list) -> None:
    """The tracked objects of ``frame`` in a session with windows: each in the window that
    follows it (``window_tracking.follow_window``); objects with the same window (and memory
    size) share its encoding and run together. Fills ``outs`` and ``shown`` at ``todo``."""
    tracker = state.tracker
    groups = defaultdict(list)
    plans = {}
    for i in todo:
        window = follow_window(tracks[i], frame, reverse, state.frame_shape, tracker.image_size)
        plans[i] = tracker.plan(tracks[i], frame, reverse, state.num_frames)
        groups[(window, plans[i].shape_key)].append(i)
    for (window, _), group in groups.items():
        feats = state.frame_features(frame, store=True, evict=False,
                                     direction=-1 if reverse else 1, window=window)
        state.recent = ((frame, window), feats)
        with torch.inference_mode(), state.autocast():
            start = tracker.frame_start(feats) if SHARE_ACROSS_OBJECTS else None
            for members in _chunks(group, state.device):
                new, logits = tracker.track(feats, [plans[i] for i in members],
                                            [tracks[i] for i in members],
                                            state.num_frames, state.memory_of, start)
                for k, (i, out) in enumerate(zip(members, new)):
                    out.window = window
                    outs[i] = out
                    shown[i] = logits[k:k + 1]


def run_propagation(state: TrackingState, tracks: list[ObjectTrack], order: list[int],
                    reverse: bool, stop_after_absent: int | None = None
                    ) -> Iterator[FrameResult]:
    """Yield the ``FrameResult`` of each frame of ``order`` for ``tracks`` (from
    ``plan_propagation``), committing each frame to ``state`` before it is yielded;
    ``stop_after_absent``: see ``EarlyStop`` (None: every object on every frame)."""
    with state.lock:
        for track in state.tracks.values():
            track.consolidate()
        stops = EarlyStop(tracks, order, stop_after_absent)
    try:
        for index, frame in enumerate(order):
            with state.lock:
                if any(state.tracks.get(t.obj_id) is not t for t in tracks):
                    raise RuntimeError("objects were removed or the session was reset during "
                                       "propagation; start a new propagation")
                active = [t for t in stops.active(tracks, frame)
                          if state.lineage.allows(t.obj_id, frame)]
                result = _step(state, active, frame, reverse)
            stops.update(result)
            yield result
            if stops.finished(index):
                return
    finally:
        state.recent = None

