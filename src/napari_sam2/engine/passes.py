"""Propagation over a frame range in one or two passes: the one code path of the widget's
"forward" / "backward" / "both" and of a replayed session record.

``both`` runs a forward pass from ``start`` to ``last``, then a backward pass from ``start``
down to ``first`` (the start frame is computed, and yielded, once per pass). Imports nothing
heavy: the session does the work.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from napari_sam2.engine.types import FrameResult

#: the directions a propagation may take
DIRECTIONS = ("forward", "backward", "both")


def check_direction(direction: str) -> str:
    """``direction`` if it is one of ``DIRECTIONS``, else a ValueError saying which are."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    return direction


def pass_spans(start: int, first: int, last: int, direction: str,
               max_frames: int | None = None) -> list[tuple[bool, int]]:
    """The passes of a run as ``(reverse, frames beyond start)``, in order.

    Args:
        start: the frame both passes start from (``first <= start <= last``).
        first, last: the frames that may be written (inclusive).
        direction: "forward", "backward" or "both" (forward first).
        max_frames: at most this many frames beyond ``start`` in each pass (None: to the range's
            end), as ``TrackingSession.propagate``'s ``max_frames``.
    """
    check_direction(direction)
    if not first <= start <= last:
        raise ValueError(f"start frame {start} is outside the range {first}-{last}")
    passes = []
    if direction in ("forward", "both"):
        passes.append((False, last - start))
    if direction in ("backward", "both"):
        passes.append((True, start - first))
    if max_frames is not None:
        passes = [(rev, min(span, int(max_frames))) for rev, span in passes]
    return passes


def propagate_passes(session, start: int, *, direction: str = "forward",
                     first: int = 0, last: int | None = None, max_frames: int | None = None,
                     obj_ids=None, stop_after_absent: int | None = None,
                     stop: threading.Event | None = None,
                     limit: int | None = None, divisions=None) -> Iterator[FrameResult]:
    """Stream the ``FrameResult``s of one run of ``session`` (a ``TrackingSession``).

    Args:
        start, direction, first, last, max_frames: as ``pass_spans`` (``last`` None: the last
            frame of the session).
        obj_ids: the objects to track (None: all), stop_after_absent: as ``propagate``.
        stop: when set, the run ends right after the frame being yielded (kept, like every
            frame before it); the engine generator is closed at once.
        limit: end after this many frames (a replayed run that was cancelled after that many).
        divisions: a ``division.DivisionRule`` to find divisions in the forward pass (None:
            none); a frame may then come again, with the daughters (see ``propagate``).

    Returns (as the generator's value) the number of frames yielded.
    """
    last = session.num_frames - 1 if last is None else int(last)
    ids = None if obj_ids is None else list(obj_ids)
    done = 0
    for reverse, span in pass_spans(int(start), int(first), last, direction, max_frames):
        if limit is not None and done >= limit:
            break
        extra = {} if reverse or divisions is None else {"divisions": divisions}
        results = session.propagate(start, reverse=reverse, max_frames=span, obj_ids=ids,
                                    stop_after_absent=stop_after_absent, **extra)
        try:
            for result in results:
                if not first <= result.frame <= last:
                    break
                done += 1
                yield result  # a frame computed is always handed over, even when stopped
                if (stop is not None and stop.is_set()) or (limit is not None and done >= limit):
                    return done
        finally:
            results.close()
    return done
