"""TrackingSession: prompts on some frames of a stack -> every object's mask on every frame.

    session = TrackingSession(model, stack)             # (T, H, W) or (T, H, W, 3), any dtype
    session.add_points(0, obj_id=1, points=[[40, 60]], labels=[1])   # (row, col)
    for result in session.propagate():                  # streams one FrameResult per frame
        labels[result.frame] = ...                      # result.masks (N, H, W) bool
    session.add_points(12, 1, [[50, 70]], [0])          # a correction: kept as conditioning

Semantics are those of Meta's Dec-2024 ``SAM2VideoPredictor`` (see docs/tracking.md), with
three differences an annotation tool needs: frames are read lazily from any array-like,
memories far from the current frame are evicted (their low-res logits stay, so they are
recomputed exactly when needed), and corrections become conditioning frames by default
(``corrections_as_conditioning=False`` gives Meta's default, which discards them).

The session validates requests and handles prompts; the per-video state (tracks, features,
lock) is a ``TrackingState`` (``tracking_state.py``) that it owns and passes to the
propagation loop (``propagation.py``).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from napari_sam2.engine import division
from napari_sam2.engine import transforms as T
from napari_sam2.engine.feature_cache import FeatureCache
from napari_sam2.engine.frames import ArrayFrames, ModelInputFrames
from napari_sam2.engine.kept_outputs import lookback
from napari_sam2.engine.lineage import Lineage
from napari_sam2.engine.object_track import PointPrompt
from napari_sam2.engine.prompts import check_box, check_points
from napari_sam2.engine.propagation import (
    check_stop_after_absent,
    plan_propagation,
    run_propagation,
)
from napari_sam2.engine.spilled_outputs import (
    DEFAULT_OUTPUTS_RAM_BYTES,
    OutputSpill,
    check_budget,
)
from napari_sam2.engine.tracker import Tracker
from napari_sam2.engine.tracking_state import TrackingState, check_obj_id
from napari_sam2.engine.types import FrameResult
from napari_sam2.engine.window_tracking import move_prompt, prompt_window
from napari_sam2.engine.windowed_image import prompt_extent
from napari_sam2.engine.windows import check_window, mask_box


def prompt_to_model(pts, lab, bx, hw, image_size) -> PointPrompt:
    """Points (N, 2) (row, col) and / or a box in an (H, W) image -> the model's prompt: box
    corners first (labels 2, 3), then the clicks, in (x, y) model-input pixels."""
    coords, codes = [], []
    if bx is not None:
        coords.append(T.box_to_model_points(bx, hw, image_size))
        codes.append(np.array([T.BOX_TOP_LEFT_LABEL, T.BOX_BOTTOM_RIGHT_LABEL], np.int32))
    if pts is not None:
        coords.append(T.points_to_model(pts, hw, image_size))
        codes.append(lab.astype(np.int32))
    return PointPrompt(np.concatenate(coords), np.concatenate(codes))


class TrackingSession:
    """Interactive video / z-stack segmentation with SAM 2.

    Args:
        model: a ``Sam2Model`` (its device is used).
        frames: array-like indexable along ``axis`` (numpy, dask, zarr, ...), frames (H, W) or
            (H, W, 3); or an ``ArrayFrames``.
        axis: the stack (time or z) axis of ``frames``.
        intensity_range: (lo, hi) mapped to 0 and 1 (e.g. contrast limits); default per frame
            as ``ImagePredictor`` (uint8 / 255, else the frame's min and max).
        corrections_as_conditioning: prompts on already tracked frames become conditioning
            frames that later propagations keep (Meta: ``add_all_frames_to_correct_as_cond``);
            False reproduces Meta's default, where the next propagation over such a frame
            overwrites it.
        feature_cache_bytes: bound of the LRU cache of image features of frames that were
            prompted or ``encode_frame``-ed (16 MiB per frame for 1024 models). Propagation
            does not fill it.
        memory_window: memories of tracked frames farther than this many frames from the
            frame being processed are dropped (and recomputed on demand); default
            ``num_maskmem * memory_temporal_stride_for_eval`` (7), which never recomputes
            during a propagation.
        read_ahead: frames read in the background ahead of propagation.
        bfloat16: None: bfloat16 autocast where the device has it natively (CUDA, CPUs
            with AVX512-BF16 / AMX; see ``engine/device.py``); False: float32; True: bfloat16.
        feature_cache: share another session's ``feature_cache`` (same frames, same model
            and intensity mapping only), e.g. to compare settings without re-encoding.
        window: None (default): every frame is seen whole, resized to the model's input.
            ``"auto"`` or a side in pixels: each object is segmented in a window around it
            that follows it along the stack (docs/tracking.md, *Windows*); only windows are
            read, and results carry window-sized logits with their windows. Without
            ``intensity_range`` each window is mapped by its own min and max.
        levels: coarser levels of ``frames`` (same layout), finest first, as napari's
            multiscale data: a window is read from the coarsest level that still gives the
            model its input size.
        outputs_ram_bytes: bound of the RAM the tracked (non-conditioning) outputs take
            (default 512 MiB; 128 KiB per object and frame for 1024 models, 8 KiB for
            ``sam2_demo``): above it the least recently used are written to a temporary
            directory and read back, bit for bit, when needed (``spilled_outputs.py``).
            What one propagation step reads always stays (``kept_outputs.lookback``
            outputs per object, 17 for the shipped configs). None: unbounded.
    """

    def __init__(self, model, frames, *, axis: int = 0, intensity_range=None,
                 corrections_as_conditioning: bool = True, feature_cache_bytes: int = 1 << 30,
                 memory_window: int | None = None, read_ahead: int = 2,
                 bfloat16: bool | None = None, feature_cache: FeatureCache | None = None,
                 window=None, levels=(),
                 outputs_ram_bytes: int | None = DEFAULT_OUTPUTS_RAM_BYTES) -> None:
        window = check_window(window)
        outputs_ram_bytes = check_budget(outputs_ram_bytes)
        if isinstance(frames, (ArrayFrames, ModelInputFrames)):
            source = frames
        else:
            source = ArrayFrames(frames, axis, read_ahead=0 if window else read_ahead,
                                 levels=levels)
        if window is not None and not isinstance(source, ArrayFrames):
            raise ValueError("windows need frames to read from: model-ready inputs are already "
                             "resized; use window=None")
        self._init(model, source, intensity_range, corrections_as_conditioning,
                   feature_cache if feature_cache is not None else feature_cache_bytes,
                   memory_window, bfloat16)
        self._state.window = window
        self._state.spill = OutputSpill(outputs_ram_bytes,
                                        keep_per_object=lookback(model.config))

    @classmethod
    def from_model_inputs(cls, model, images, video_size, **kwargs) -> TrackingSession:
        """A session over model-ready frames.

        Args:
            images: (T, 3, S, S) float32, already resized and ImageNet-normalised (e.g. Meta's
                PIL-bicubic video preprocessing, to compare with its predictor exactly).
            video_size: (H, W) of the original frames: prompts and outputs use it.
            kwargs: as for the constructor (not ``axis``, ``intensity_range``, ``read_ahead``).
        """
        return cls(model, ModelInputFrames(images, video_size), **kwargs)

    def _init(self, model, source, intensity_range, as_cond, cache_bytes, window, bf16):
        self.model = model
        tracker = Tracker(model)
        cfg = model.config
        if isinstance(source, ModelInputFrames) and source.image_size != cfg.image_size:
            raise ValueError(f"images are {source.image_size}x{source.image_size} but the model "
                             f"takes {cfg.image_size}x{cfg.image_size}")
        rng = T.check_intensity_range(intensity_range)
        self.corrections_as_conditioning = bool(as_cond)
        features = (cache_bytes if isinstance(cache_bytes, FeatureCache)
                    else FeatureCache(cache_bytes))
        if window is None:
            window = cfg.num_maskmem * cfg.memory_temporal_stride_for_eval
        if int(window) != window or window < 0:
            raise ValueError(f"memory_window must be a non-negative integer, got {window!r}")
        self._state = TrackingState(tracker=tracker, source=source, features=features,
                                    intensity_range=rng, bfloat16=bf16,
                                    memory_window=int(window))

    # ------------------------------------------------------------------ properties
    @property
    def state(self) -> TrackingState:
        """The per-video state shared with the propagation loop (see ``tracking_state.py``);
        for inspection: change it only through the session's methods."""
        return self._state

    @property
    def memory_window(self) -> int:
        """Memories of tracked frames farther than this from the frame being processed are
        evicted (read at every propagated frame)."""
        return self._state.memory_window

    @memory_window.setter
    def memory_window(self, value: int) -> None:
        self._state.memory_window = value

    @property
    def lineage(self) -> Lineage:
        """Frame ranges and parents of the objects (``lineage.py``): an object joins on its
        first prompt; ``divide`` ends the parent and adds the daughters."""
        return self._state.lineage

    @property
    def num_frames(self) -> int:
        return self._state.num_frames

    @property
    def frame_shape(self) -> tuple[int, int]:
        return self._state.frame_shape

    @property
    def obj_ids(self) -> list[int]:
        with self._state.lock:
            return sorted(self._state.tracks)

    @property
    def device(self) -> torch.device:
        return self._state.device

    @property
    def feature_cache(self) -> FeatureCache:
        """The LRU cache of image features (see ``encode_frame``)."""
        return self._state.features

    def frames_with_output(self, obj_id: int) -> list[int]:
        """Frames on which ``obj_id`` has a mask (prompted or tracked), sorted."""
        with self._state.lock:
            return self._state.track(obj_id).frames_with_output()

    def conditioning_frames(self, obj_id: int) -> list[int]:
        """Frames that condition ``obj_id``'s tracking (prompted frames, and corrections when
        ``corrections_as_conditioning``), sorted."""
        with self._state.lock:
            return self._state.track(obj_id).conditioning_frames()

    def prompt_frames(self, obj_id: int) -> list[int]:
        """Frames on which ``obj_id`` has points, a box or a mask."""
        with self._state.lock:
            return self._state.track(obj_id).prompt_frames()

    def memory_stats(self) -> dict[str, int]:
        """Bytes held: ``outputs`` (logits, pointers, memories in RAM), ``spilled`` (tracked
        outputs written to disk, ``outputs_ram_bytes``), ``features`` (cache); ``memories``:
        how many memory features are held."""
        st = self._state
        with st.lock:
            bank = [o for t in st.tracks.values()
                    for items in (t.cond.items,
                                  getattr(t.non_cond, "resident_items", t.non_cond.items))
                    for _, o in items()]
            temp = [o for t in st.tracks.values() for d in (t.temp_cond, t.temp_non_cond)
                    for o in d.values()]
            outs = sum(o.nbytes for o in bank + temp)
            mems = sum(1 for o in bank if o.memory is not None)
            spilled = st.spill.spilled
        return {"outputs": int(outs), "spilled": int(spilled), "features": st.features.nbytes,
                "memories": mems}

    @property
    def outputs_ram_bytes(self) -> int | None:
        """Bound of the RAM of tracked outputs (None: unbounded); may be changed."""
        return self._state.spill.ram_bytes

    @outputs_ram_bytes.setter
    def outputs_ram_bytes(self, value: int | None) -> None:
        with self._state.lock:
            self._state.spill.set_budget(value)

    # ------------------------------------------------------------------ features
    def encode_frame(self, frame: int) -> None:
        """Compute and cache ``frame``'s image features (thread-safe; for prefetching).

        With windows this does nothing: a window is known only from a prompt, and a whole
        frame may be far too large to read."""
        f = self._state.check_frame(frame)
        if self._state.window is not None:
            return
        self._state.frame_features(f, store=True)

    def set_intensity_range(self, intensity_range) -> None:
        """Change the intensity mapping; cached features are dropped, outputs are kept."""
        st = self._state
        if isinstance(st.source, ModelInputFrames):
            raise ValueError("a session over model-ready inputs has no intensity mapping")
        rng = T.check_intensity_range(intensity_range)
        with st.lock:
            st.intensity_range = rng
            st.recent = None
            st.features.clear()

    # ------------------------------------------------------------------ prompts
    @property
    def window(self):
        """The window setting: None (whole frames), ``"auto"`` or a side in pixels."""
        return self._state.window

    def _prompt(self, frame, obj_id, compute, extent=None, clicks=False, *,
                others: bool = True) -> FrameResult:
        """Common bookkeeping of add_points / add_box / add_mask.

        ``compute(feats, track, is_init, reverse, prev_logits, window)`` returns the
        ``FrameOutput`` and a function that commits the prompt to the track. Nothing changes
        on error. ``extent`` (r0, c0, r1, c1) and ``clicks`` place the window, if any.
        ``others``: the result holds every object with an output on the frame (False: only
        this one).
        """
        st = self._state
        f = st.check_frame(frame)
        oid = check_obj_id(obj_id)
        with st.lock:
            if not st.lineage.allows(oid, f):
                seg = st.lineage.tracks[oid]
                span = f"{seg.start}..{'the end' if seg.end is None else seg.end}"
                raise ValueError(f"object {oid} exists on frames {span} only (a division); "
                                 f"frame {f} is outside: prompt its parent or daughters there "
                                 "instead")
            track = st.tracks.get(oid) or st.new_track(oid)
            is_init = f not in track.tracked
            reverse = False if is_init else track.tracked[f]
            as_cond = is_init or self.corrections_as_conditioning
            temp = track.temp_cond if as_cond else track.temp_non_cond
            prev = temp.get(f) or track.cond.get(f) or track.non_cond.get(f)

            def run(window):
                feats = st.frame_features(f, store=True, window=window)
                same = prev is not None and prev.window == window
                with torch.inference_mode(), st.autocast():
                    out, commit = compute(feats, track, is_init, reverse,
                                          prev.low_res if same else None, window)
                out.window = window
                return out, commit

            side = None
            if st.window is None:
                out, commit = run(None)
            else:
                (out, commit), _, side = prompt_window(
                    st.window, track, f, extent, self.frame_shape, st.tracker.image_size,
                    run, clicks=clicks)
            commit()
            if side is not None:
                track.side = side
            track.store_prompt_output(f, out, as_cond)
            st.tracks[oid] = track
            st.lineage.add(oid, f)
            return st.result(f, [t for _, t in sorted(st.tracks.items())] if others
                             else [track])

    def add_points(self, frame: int, obj_id: int, points, labels, *, clear: bool = True,
                   box=None) -> FrameResult:
        """Click prompts for one object on one frame.

        Args:
            points: (N, 2) (row, col) in the frame's pixels; labels (N,): 1 object, 0 not.
            clear: replace this frame's earlier points of the object (False: add to them).
            box: optional (r0, c0, r1, c1) together with the points (needs ``clear``).

        Returns:
            ``FrameResult`` of the frame, for every object that has an output there.
        """
        hw = self.frame_shape
        pts, lab = check_points(points, labels, hw)
        bx = check_box(box, hw)
        if pts is None and bx is None:
            raise ValueError("no prompt: pass points (N, 2) (row, col) with labels, or a box")
        if bx is not None and not clear:
            raise ValueError("a box must come first: use clear=True when passing a box")
        tracker = self._state.tracker
        S = tracker.image_size

        def prompt_in(window) -> PointPrompt:  # the prompt in model pixels of the window
            if window is None:
                return prompt_to_model(pts, lab, bx, hw, S)
            return prompt_to_model(None if pts is None else window.to_local(pts), lab,
                                   None if bx is None else window.box_to_local(bx),
                                   window.shape, S)

        f = self._state.check_frame(frame)

        def compute(feats, track, is_init, reverse, prev_logits, window):
            new = prompt_in(window)
            old = track.points.get(f)
            shown = track.output(f)
            if old is not None and not clear and shown is not None and shown.window != window:
                old = move_prompt(old, shown.window, window, S)
            prompt = new if clear or old is None else old.extended(new.coords, new.labels)
            out = tracker.points(
                feats, track, f, coords=prompt.coords, labels=prompt.labels,
                prev_logits=prev_logits, is_init=is_init, reverse=reverse,
                num_frames=self.num_frames, memory_of=self._state.memory_of)

            def commit():
                track.points[f] = prompt
                track.mask_frames.discard(f)
            return out, commit

        return self._prompt(f, obj_id, compute, extent=prompt_extent(pts, lab, bx),
                            clicks=bx is None)

    def add_box(self, frame: int, obj_id: int, box, *, points=None, labels=None) -> FrameResult:
        """A box (r0, c0, r1, c1) prompt (optionally with clicks) for one object."""
        if box is None:
            raise ValueError("box is required: (r0, c0, r1, c1)")
        return self.add_points(frame, obj_id, points, labels, clear=True, box=box)

    def add_mask(self, frame: int, obj_id: int, mask, *, others: bool = True) -> FrameResult:
        """A mask prompt: (H, W) bool (or 0/1) at the frame's resolution is taken as output.

        Returns the ``FrameResult`` of the frame for every object with an output there;
        ``others=False``: for this object only, which keeps adding many masks (segment
        everything, "Track all labels here") linear in the number of objects instead of
        upsampling all objects' masks after each one.
        """
        m = np.asarray(mask)
        if m.shape != self.frame_shape:
            raise ValueError(f"mask must have the frame's shape {self.frame_shape}, got {m.shape}")
        if m.dtype != bool:
            if not (np.issubdtype(m.dtype, np.integer) or np.issubdtype(m.dtype, np.floating)):
                raise TypeError(f"mask must be bool or 0/1 numbers, got dtype {m.dtype}")
            if not np.isin(m, (0, 1)).all():
                raise ValueError("mask values must be 0/1 (or bool); threshold it first")
            m = m.astype(bool)
        st = self._state
        f = st.check_frame(frame)

        def compute(feats, track, is_init, reverse, prev_logits, window):
            crop = m if window is None else window.crop(m)
            out = st.tracker.mask(feats, track, f, mask=crop, is_init=is_init, reverse=reverse,
                                  num_frames=self.num_frames, memory_of=st.memory_of)

            def commit():
                track.points.pop(f, None)
                track.mask_frames.add(f)
            return out, commit

        extent = mask_box(m) if st.window is not None else None
        if st.window is not None and extent is None:
            raise ValueError(f"the mask of object {obj_id} on frame {f} is empty: a session with "
                             "windows places the window on the mask; give a mask with pixels")
        return self._prompt(f, obj_id, compute, extent=extent, others=others)

    # ------------------------------------------------------------------ results
    def result(self, frame: int, obj_ids=None) -> FrameResult:
        """The current outputs on ``frame`` (no computation)."""
        st = self._state
        f = st.check_frame(frame)
        with st.lock:
            ids = self.obj_ids if obj_ids is None else [st.track(o).obj_id for o in obj_ids]
            return st.result(f, [st.tracks[o] for o in ids])

    # ------------------------------------------------------------------ objects
    def remove_object(self, obj_id: int) -> None:
        """Forget an object: its prompts and outputs."""
        st = self._state
        with st.lock:
            oid = st.tracks.pop(st.track(obj_id).obj_id).obj_id
            if oid in st.lineage:
                st.lineage.remove(oid)

    def clear_frame(self, frame: int, obj_id: int | None = None) -> None:
        """Remove the prompts on ``frame`` (of one object, or of all).

        A conditioning output there becomes a plain tracked output that the next propagation
        over the frame recomputes.
        """
        st = self._state
        f = st.check_frame(frame)
        with st.lock:
            tracks = list(st.tracks.values()) if obj_id is None else [st.track(obj_id)]
            for track in tracks:
                track.clear_frame(f)

    def reset(self) -> None:
        """Forget all objects, prompts and outputs (cached features are kept)."""
        with self._state.lock:
            self._state.tracks.clear()
            self._state.lineage.clear()
            self._state.spill.close()

    def divide(self, frame: int, parent_id: int, daughters) -> FrameResult:
        """``parent_id`` divides on ``frame``: its track ends on ``frame - 1`` (its prompts
        and outputs from ``frame`` on are removed) and each of ``daughters`` ({new id: (H, W)
        bool mask}) becomes a new object with that mask prompt on ``frame``, its parent
        recorded in ``lineage``. Nothing changes on error. See ``division.py``."""
        return division.divide(self, frame, parent_id, daughters)

    # ------------------------------------------------------------------ propagation
    def propagate(self, start: int | None = None, *, reverse: bool = False,
                  max_frames: int | None = None, obj_ids=None,
                  stop_after_absent: int | None = None,
                  divisions: division.DivisionRule | None = None) -> Iterator[FrameResult]:
        """Track objects frame by frame from ``start``; yields a ``FrameResult`` per frame.

        Args:
            start: first frame; default the earliest conditioning frame of the objects.
            reverse: go towards frame 0 (nothing to do when starting at 0).
            max_frames: how many frames to go beyond ``start``, as Meta's
                ``max_frame_num_to_track``: frames ``start .. start + max_frames`` (reverse:
                down to ``start - max_frames``), i.e. ``max_frames + 1`` frames with the start
                frame, clipped to the video; 0 processes only ``start``. Default: to the end.
            obj_ids: the objects to track (default all); the others are left as they are.
            stop_after_absent: N >= 1 to stop tracking an object once its object score was
                <= 0 on N frames in a row of this run (counted from ``start``, the frame that
                completes the N included): an object that has ended in a z-stack costs
                nothing more. Its later frames are neither computed nor changed (outputs from
                an earlier run stay) and it is absent from their results, until a frame where
                it has a conditioning output (a prompt): that frame is shown and tracking goes
                on from it. The run ends once every object has stopped with no prompt ahead.
                None (default): every object on every frame, as Meta's predictor.
            divisions: a ``DivisionRule`` to find and apply cell divisions while going
                forward (``division.propagate_with_divisions``; frames after a division are
                yielded again with the daughters); None (default): no divisions.

        Raises (at the call, before anything changes):
            ValueError: no objects, an object without prompts, bad start, max_frames or
                stop_after_absent.

        Closing the generator stops after the last yielded frame; all frames done are kept
        and the session stays usable.
        """
        stop = check_stop_after_absent(stop_after_absent)
        if divisions is not None and not reverse:
            with self._state.lock:  # validate now, as the plain call does
                plan_propagation(self._state, start, reverse, max_frames, obj_ids)
            return division.propagate_with_divisions(
                self, start, rule=divisions, max_frames=max_frames, obj_ids=obj_ids,
                stop_after_absent=stop)
        with self._state.lock:
            tracks, order = plan_propagation(self._state, start, reverse, max_frames, obj_ids)
        return run_propagation(self._state, tracks, order, bool(reverse), stop)
