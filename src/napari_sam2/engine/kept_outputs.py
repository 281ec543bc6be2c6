"""Tracked outputs a long headless run keeps, drops, saves and restores (``napari-sam2 track``).

A ``TrackingSession`` keeps every frame's low-res logits and object pointer, so its memory
grows with the stack (8 KiB per object and frame for ``sam2_demo``, 128 KiB for the official
1024-pixel models). A propagation step only ever reads the outputs of its conditioning frames
and of the :func:`lookback` frames behind it, so a run that will not go back may drop the
others (:func:`forget_tracked`) and gets the same masks. The same few outputs are what a run
needs to go on from a frame after it was killed: :func:`tracked_output` turns one frame's
outputs into numpy arrays (for a journal on disk) and :func:`restore_tracked` puts them back
bit for bit.

Only non-conditioning (tracked) outputs are handled here; conditioning outputs come from the
prompts, which a resumed run replays.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from napari_sam2.engine.object_track import FrameOutput
from napari_sam2.engine.tracker import TRACKED_LOGITS_DTYPE

__all__ = ["forget_tracked", "lookback", "restore_tracked", "tracked_output"]


def lookback(config) -> int:
    """How many frames behind (in the direction of travel) a propagation step may read outputs
    of: spatial memories reach ``num_maskmem * stride`` frames back, object pointers
    ``max_obj_ptrs_in_encoder - 1``; one frame of margin."""
    return max(config.num_maskmem * config.memory_temporal_stride_for_eval,
               config.max_obj_ptrs_in_encoder) + 1


def forget_tracked(session, keep: Callable[[int], bool]) -> int:
    """Drop the tracked (non-conditioning) outputs of every frame where ``keep(frame)`` is
    False, for every object; conditioning outputs and pending prompt outputs stay.

    Returns the number of outputs dropped. A later propagation that reads a dropped frame
    would see it as never tracked: call this only for frames no later step will read.
    """
    st = session.state
    n = 0
    with st.lock:
        for track in st.tracks.values():
            gone = [f for f in track.non_cond if not keep(f)]
            for f in gone:
                del track.non_cond[f]
            n += len(gone)
    return n


def tracked_output(session, frame: int) -> dict[str, np.ndarray]:
    """The tracked outputs on ``frame`` as arrays: ``obj_ids`` (N,) int64, ``low_res``
    (N, 4h, 4w) float16, ``obj_ptr`` (N, C) float32, ``score`` (N,) float32 (N = 0 when no
    object has a tracked output there)."""
    st = session.state
    ids, lows, ptrs, scores = [], [], [], []
    with st.lock:
        for oid, track in sorted(st.tracks.items()):
            out = track.non_cond.get(frame)
            if out is None:
                continue
            ids.append(oid)
            lows.append(out.low_res.reshape(out.low_res.shape[-2:]).cpu().numpy())
            ptrs.append(out.obj_ptr.reshape(-1).cpu().numpy())
            scores.append(float(out.score.reshape(-1)[0]))
    cfg = session.model.config
    side = cfg.image_size // 4
    return {
        "obj_ids": np.asarray(ids, np.int64),
        "low_res": np.stack(lows) if lows else np.zeros((0, side, side), np.float16),
        "obj_ptr": np.stack(ptrs) if ptrs else np.zeros((0, cfg.hidden_dim), np.float32),
        "score": np.asarray(scores, np.float32),
    }


def restore_tracked(session, frame: int, arrays: dict[str, np.ndarray], *,
                    reverse: bool) -> None:
    """Put outputs saved by :func:`tracked_output` back as ``frame``'s tracked outputs (visited
    in direction ``reverse``); objects the session does not know raise ValueError."""
    st = session.state
    device = st.device
    with st.lock:
        for i, oid in enumerate(np.asarray(arrays["obj_ids"]).tolist()):
            track = st.track(oid)
            low = torch.from_numpy(np.asarray(arrays["low_res"][i]))
            track.non_cond[frame] = FrameOutput(
                low_res=low.to(TRACKED_LOGITS_DTYPE)[None, None].to(device),
                obj_ptr=torch.from_numpy(np.asarray(arrays["obj_ptr"][i], np.float32))[None]
                .to(device),
                score=torch.tensor([[float(arrays["score"][i])]], dtype=torch.float32,
                                   device=device),
                from_prompt=False)
            track.tracked[frame] = bool(reverse)
