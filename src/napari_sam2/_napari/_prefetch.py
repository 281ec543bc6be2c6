"""Prefetch of image embeddings: encode the shown frame and its neighbours in a worker.

As soon as a slice is shown, the frame and its neighbours (``+1``, ``-1``) are encoded through
``TrackingSession.encode_frame`` (which caches features, bounded, least recently used first),
so a click costs only the decoder. A newer request stops the older worker at its next frame.
The prefetch worker runs beside the job queue: ``encode_frame`` is thread-safe by contract.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from napari_sam2._napari._workers import WorkerFactory, napari_worker, prefetch_steps

NEIGHBOURS = (0, 1, -1)


def frames_to_prefetch(frame: int, n_frames: int, neighbours=NEIGHBOURS) -> list[int]:
    """The frame and its neighbours that exist, in priority order."""
    out = []
    for d in neighbours:
        f = frame + d
        if 0 <= f < n_frames and f not in out:
            out.append(f)
    return out


class Prefetcher:
    """Starts prefetch workers; remembers (recently) encoded frames to skip resubmits."""

    def __init__(self, memory: int = 64, start_worker: WorkerFactory = napari_worker):
        self._start_worker = start_worker
        self._running: object | None = None
        self.worker = None
        self._stop: threading.Event | None = None
        self._done: OrderedDict = OrderedDict()
        self._memory = int(memory)
        self.encoded_count = 0
        self.on_error = None

    def request(self, session, frame: int) -> list[int]:
        """Prefetch ``frame`` and its neighbours of ``session``; returns the frames queued."""
        frames = [
            f for f in frames_to_prefetch(frame, session.num_frames)
            if (id(session), f) not in self._done
        ]
        if not frames:
            return []
        self.stop()
        stop = threading.Event()
        ticket = object()

        def job():
            yield from prefetch_steps(session, frames, stop)

        self.worker, self._running, self._stop = ticket, ticket, stop
        handle = self._start_worker(
            job, yielded=lambda f, s=session: self._mark(s, f), errored=self.on_error,
            finished=lambda: self._finished(ticket),
        )
        if self._running is ticket:  # still running (a synchronous factory has finished it)
            self.worker = handle
        return frames

    def _mark(self, session, frame: int) -> None:
        self.encoded_count += 1
        self._done[(id(session), int(frame))] = True
        while len(self._done) > self._memory:
            self._done.popitem(last=False)

    def _finished(self, ticket) -> None:
        if self._running is ticket:
            self.worker = self._running = None

    def forget(self) -> None:
        """Forget what was encoded (after a model or contrast change)."""
        self._done.clear()

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()
        if self.worker is not None and hasattr(self.worker, "quit"):
            self.worker.quit()

    @property
    def busy(self) -> bool:
        return self.worker is not None
