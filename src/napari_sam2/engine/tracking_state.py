"""TrackingState: what a ``TrackingSession`` and its propagation loop share.

The session creates one state and owns it: prompts (``session.py``) and the propagation loop
(``propagation.py``) each read and change it only through the fields and methods below, so
either module can change without the other.

Who changes what:

* ``tracks``: the session adds, removes and clears objects and stores prompt outputs; the loop
  consolidates prompt outputs into the banks, stores tracked outputs and evicts memories.
* ``recent``: the loop sets it to the frame it is processing (so that a prompt on that frame
  reuses its features) and clears it when it ends; the session clears it when the intensity
  mapping changes.
* ``intensity_range`` and ``features``: changed only by the session (``set_intensity_range``).
* ``memory_window``: read by the loop at every frame; the session's ``memory_window`` attribute
  is this field.
* ``tracker``, ``source``, ``bfloat16``: fixed at construction.

``tracks`` and the outputs in them are read and changed only under ``lock``. ``recent`` is
replaced as a whole (one tuple), so ``frame_features`` may read it without the lock (prefetching
from another thread) and sees either the old or the new frame.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import torch

from napari_sam2.engine import transforms as T
from napari_sam2.engine.device import autocast, uses_bfloat16
from napari_sam2.engine.feature_cache import FeatureCache, FrameFeatures
from napari_sam2.engine.frames import ArrayFrames, ModelInputFrames
from napari_sam2.engine.lineage import Lineage
from napari_sam2.engine.object_track import ObjectTrack
from napari_sam2.engine.spilled_outputs import OutputSpill
from napari_sam2.engine.tracker import Tracker
from napari_sam2.engine.types import FrameResult


def check_obj_id(obj_id) -> int:
    """``obj_id`` as an int, or a TypeError."""
    if isinstance(obj_id, (bool, np.bool_)) or not isinstance(obj_id, (int, np.integer)):
        raise TypeError(f"obj_id must be an integer, got {obj_id!r}")
    return int(obj_id)


@dataclass(eq=False)
class TrackingState:
    """The per-video state of a tracking session.

    Attributes:
        tracker: the model steps (``Tracker``; holds no per-video state).
        source: the frames (``ArrayFrames`` or ``ModelInputFrames``).
        features: LRU cache of image features of prompted / encoded frames.
        intensity_range: (lo, hi) mapped to 0 and 1, or None (per frame, as ``ImagePredictor``).
        bfloat16: None: bfloat16 autocast where the device has it natively (CUDA, CPUs
            with AVX512-BF16 / AMX; see ``engine/device.py``); False: float32; True: bfloat16.
        memory_window: memories of tracked frames farther than this from the frame being
            processed are evicted.
        tracks: object id -> ``ObjectTrack`` (prompts, outputs, memory bank).
        lock: guards ``tracks`` and the outputs in them (re-entrant).
        recent: (frame, features) of the frame being propagated, which propagation does not
            put in ``features``; None outside a propagation step. With windows the key is
            (frame, window).
        window: None (whole frames, the default), ``"auto"`` or a side in pixels: each object
            is segmented in a window around it (``window_tracking.py``); features are then
            cached per (frame, window), so objects sharing a window share its encoding.
        lineage: the objects' frame ranges and parents (``lineage.py``); the loop computes an
            object only on frames its lineage allows (not after a division, a daughter not
            before it). Changed under ``lock`` by the session and ``division.py``.
        spill: the RAM bound of the tracked outputs (``spilled_outputs.py``); every track's
            ``non_cond`` is one of its mappings (``new_track``).
    """

    tracker: Tracker
    source: ArrayFrames | ModelInputFrames
    features: FeatureCache
    intensity_range: tuple[float, float] | None
    bfloat16: bool | None
    memory_window: int
    tracks: dict[int, ObjectTrack] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    recent: tuple[int, FrameFeatures] | None = None
    window: int | str | None = None
    lineage: Lineage = field(default_factory=Lineage)
    spill: OutputSpill = field(default_factory=lambda: OutputSpill(None))

    # ------------------------------------------------------------------ frames
    @property
    def num_frames(self) -> int:
        return self.source.num_frames

    @property
    def frame_shape(self) -> tuple[int, int]:
        return tuple(self.source.frame_shape)

    @property
    def device(self) -> torch.device:
        return self.tracker.device

    def check_frame(self, frame) -> int:
        """``frame`` as an int in 0 .. num_frames - 1, or a TypeError / ValueError."""
        if isinstance(frame, (bool, np.bool_)) or not isinstance(frame, (int, np.integer)):
            raise TypeError(f"frame must be an integer index, got {frame!r}")
        f = int(frame)
        if not 0 <= f < self.num_frames:
            raise ValueError(f"frame {f} is out of range: the stack has frames "
                             f"0..{self.num_frames - 1}")
        return f

    def new_track(self, obj_id: int) -> ObjectTrack:
        """An empty track whose tracked outputs live under ``spill``'s RAM bound."""
        return ObjectTrack(obj_id, non_cond=self.spill.new_outputs())

    def track(self, obj_id) -> ObjectTrack:
        """The track of ``obj_id``; ValueError for an unknown object."""
        oid = check_obj_id(obj_id)
        track = self.tracks.get(oid)
        if track is None:
            raise ValueError(f"unknown object {oid}; known objects: {sorted(self.tracks)}")
        return track

    # ------------------------------------------------------------------ features
    @property
    def uses_bfloat16(self) -> bool:
        """Whether the model steps run under bfloat16 autocast (``bfloat16`` and the device)."""
        return uses_bfloat16(self.device, self.bfloat16)

    def autocast(self):
        """The autocast context of the model steps (bfloat16 per ``bfloat16``)."""
        return autocast(self.device, enabled=self.bfloat16)

    def _compute_features(self, frame: int, direction: int, window=None) -> FrameFeatures:
        S = self.tracker.image_size
        if window is None:
            x = self.source.model_input(frame, direction, image_size=S, device=self.device,
                                        intensity_range=self.intensity_range)
        else:  # only the window is read, from the level that matches its pixel size
            pixels, _ = self.source.plane(frame).read(window, S)
            x = T.preprocess_image(T.check_image(pixels, f"frame {frame} {window}"), S,
                                   intensity_range=self.intensity_range, device=self.device)
        with torch.inference_mode(), self.autocast():
            return self.tracker.encode(x)

    def frame_features(self, frame: int, *, store: bool, evict: bool = True,
                       direction: int = 1, window=None) -> FrameFeatures:
        """Image features of ``frame`` (of its ``window``, None: the whole frame): ``recent``
        if it is that frame, else from the cache (computed on a miss, and kept there when
        ``store``; with ``evict=False`` only if the cache has room without dropping another
        frame). ``direction``: the way frames are being read (for read-ahead)."""
        key = frame if window is None else (frame, window)
        recent = self.recent
        if recent is not None and recent[0] == key:
            return recent[1]
        return self.features.get_or_compute(
            key, lambda: self._compute_features(frame, direction, window), store=store,
            evict=evict)

    def memory_of(self, track: ObjectTrack, frame: int) -> torch.Tensor:
        """Memory features of ``frame`` in ``track``'s bank, recomputed if evicted."""
        out = track.bank_output(frame)
        if out.memory is None:
            feats = self.frame_features(frame, store=False, window=out.window)
            out.memory = self.tracker.encode_memory(feats, out)
        return out.memory

    # ------------------------------------------------------------------ results
    def result(self, frame: int, tracks, outs=None, logits=None) -> FrameResult:
        """FrameResult of ``frame`` for ``tracks`` that have an output there.

        ``outs`` / ``logits``: per track, outputs and (1, 1, 4h, 4w) logits to show instead of
        the stored ones (the float32 values of a step just computed).
        """
        ids, lows, scores, windows = [], [], [], []
        for i, track in enumerate(tracks):
            out = outs[i] if outs is not None else track.output(frame)
            if out is None:
                continue
            ids.append(track.obj_id)
            low = logits[i] if logits is not None else out.low_res
            lows.append(low.float())
            scores.append(float(out.score.reshape(-1)[0]))
            windows.append(out.window)
        h, w = self.frame_shape
        if self.window is not None:  # window-sized logits only: nothing of frame size
            with torch.inference_mode():
                crops = [T.upsample_logits(low, win.shape)[0, 0].cpu().numpy()
                         .astype(np.float32, copy=False) for low, win in zip(lows, windows)]
            return FrameResult(frame, ids, crops, np.asarray(scores, np.float32),
                               windows=windows, frame_shape=(h, w))
        if not ids:
            return FrameResult(frame, [], np.zeros((0, h, w), np.float32),
                               np.zeros((0,), np.float32))
        with torch.inference_mode():
            logits = T.upsample_logits(torch.cat(lows), (h, w))[:, 0]  # (N, H, W)
        return FrameResult(frame, ids, logits.cpu().numpy().astype(np.float32, copy=False),
                           np.asarray(scores, np.float32))
