"""Prefetch of image embeddings: encode the shown frame and its neighbours in a worker.

As soon as a slice is shown, the frame and its neighbours (``+1``, ``-1``) are encoded through
``TrackingSession.encode_frame`` (which caches features, bounded, least recently used first),
so a click costs only the decoder. A newer request stops the older worker at its next frame.
The prefetch worker runs beside the job queue: ``encode_frame`` is thread-safe by contract.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from napari_sam2._napari._workers import prefetch_steps

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

    def __init__(self, memory: int = 64):
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
        from napari.qt.threading import create_worker

        stop = threading.Event()

        def job():
            yield from prefetch_steps(session, frames, stop)

        worker = create_worker(job, _start_thread=False, _ignore_errors=True)
        worker.yielded.connect(lambda f, s=session: self._mark(s, f))
        if self.on_error is not None:
            worker.errored.connect(self.on_error)
        worker.finished.connect(lambda w=worker: self._finished(w))
        self.worker, self._stop = worker, stop
        worker.start()
        return frames

    def _mark(self, session, frame: int) -> None:
        self.encoded_count += 1
        self._done[(id(session), int(frame))] = True
        while len(self._done) > self._memory:
            self._done.popitem(last=False)

    def _finished(self, worker) -> None:
        if self.worker is worker:
            self.worker = None

    def forget(self) -> None:
        """Forget what was encoded (after a model or contrast change)."""
        self._done.clear()

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()
        if self.worker is not None:
            self.worker.quit()

    @property
    def busy(self) -> bool:
        return self.worker is not None
