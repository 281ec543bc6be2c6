"""Segment everything on the shown frame, in a job, pasted into Labels as one undoable step.

``Everything`` needs no viewer (like ``Segmenter`` and ``Tracker``): it is given the image
(what ``SessionStore`` reads), the Labels target, the stack and the frame, and works through
the shared job queue, session store, ``LabelsWriter`` and ``Feedback``.

Existing labels are never touched unless asked: by default the new objects take only pixels
that are empty on that frame, with ids above every label in the layer (and every object the
widget knows); ``replace=True`` first clears that frame's labels (in the same undo step).
With ``track=True`` every new object's mask also becomes its prompt on that frame in the same
job (what "Track all labels here" does), so a propagation can start as soon as it returns.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from napari_sam2._napari._big_labels import labels_array
from napari_sam2._napari._layers import LabelsWriter, UndoGroup, labels_on_plane, next_free_label
from napari_sam2._napari._messages import Feedback
from napari_sam2._napari._sessions import SessionStore, image_array, intensity_range
from napari_sam2._napari._stack import FrameStack, StackRef
from napari_sam2._napari._workers import JobQueue
from napari_sam2.engine.session_record import MaskStep


def everything_steps(model, frame_image, *, intensity, occupied, first_id: int, options,
                     stop: threading.Event):
    """Run ``engine.automatic`` on one frame; yields (points done, total); returns the
    ``AutomaticResult``, or None when ``stop`` was set (the engine stops at its next batch)."""
    from napari_sam2.engine.automatic import iter_segment_everything

    steps = iter_segment_everything(model, frame_image, intensity_range=intensity,
                                    occupied=occupied, first_id=first_id, options=options)
    try:
        while True:
            try:
                step = next(steps)
            except StopIteration as end:
                return end.value
            yield step
            if stop.is_set():
                return None
    finally:
        steps.close()


class Everything:
    """One "segment everything" job at a time on the shared queue."""

    def __init__(self, jobs: JobQueue, sessions: SessionStore, writer: LabelsWriter,
                 feedback: Feedback, *, progress: Callable[[int, int, float], None] | None = None):
        self.jobs = jobs
        self.sessions = sessions
        self.writer = writer
        self.feedback = feedback
        self.progress = progress or (lambda done, total, rate: None)  # grid points, points/s
        self._stop: threading.Event | None = None
        self._t0 = 0.0

    @property
    def running(self) -> bool:
        return self._stop is not None

    def cancel(self) -> None:
        """Stop after the batch being decoded; nothing is written."""
        if self._stop is not None:
            self._stop.set()

    def segment(self, image, labels, ref: StackRef, frame: int, *, known=(), options=None,
                replace: bool = False, track: bool = False,
                on_done: Callable[[list[int]], None] | None = None) -> None:
        """Queue segment everything on ``frame`` of the stack ``ref`` of ``image``.

        Args:
            labels: the Labels target (``data`` + ``refresh()``).
            known: object ids in use besides those in ``labels`` (new ids go above them).
            options: an ``engine.automatic.AutomaticOptions`` (None: the defaults).
            replace: clear the frame's labels first (default: fill only empty pixels).
            track: also make each new object's mask its prompt on ``frame``.
            on_done: called with the new ids after they were written (not when cancelled).
        """
        key = ref.plane_key(frame)
        plane = np.array(labels_array(labels)[key])
        occupied = None if replace else plane > 0
        first = next_free_label(labels_array(labels), known)
        stop = threading.Event()
        self._stop, self._t0 = stop, time.perf_counter()
        intensity = intensity_range(image)
        stack = FrameStack(image_array(image), ref, rgb=getattr(image, "rgb", False))

        def job():  # the model as loaded by then (a Load queued before this job has run)
            if self.sessions.model is None:
                raise RuntimeError("no model is loaded yet: pick one and press Load")
            result = yield from everything_steps(self.sessions.model, stack[frame],
                                                 intensity=intensity,
                                                 occupied=occupied, first_id=first,
                                                 options=options, stop=stop)
            if result is not None and track and len(result.ids):
                session = self.sessions.get(image, ref)
                for i in result.ids:
                    mask = result.labels == i
                    session.add_mask(frame, int(i), mask, others=False)
                    self.sessions.recorder.add(session, MaskStep(frame, int(i), mask))
            return result

        self.feedback.busy(True)
        self.feedback.say(f"segmenting everything on frame {frame} ...")
        self.jobs.submit(
            job, yielded=self._on_step,
            returned=lambda result: self._done(result, labels, key, frame, replace, on_done),
            errored=self.feedback.failed(f"segmenting everything on frame {frame}"),
            finished=self._finished,
        )

    def _on_step(self, step) -> None:
        done, total = step
        rate = done / max(time.perf_counter() - self._t0, 1e-6)
        self.progress(done, total, rate)

    def _finished(self) -> None:
        self._stop = None
        self.progress(0, 0, 0.0)

    def _done(self, result, target, key, frame: int, replace: bool, on_done) -> None:
        if result is None:
            self.feedback.say(f"segment everything on frame {frame} cancelled: nothing written")
            return
        if not self.feedback.exists(target):
            self.feedback.error(f"the Labels layer '{target.name}' was removed: the objects "
                                f"found on frame {frame} were not written")
            return
        group = UndoGroup(f"segment everything on frame {frame}", target=target)
        if replace:
            plane = np.array(labels_array(target)[key])
            for old in labels_on_plane(plane):
                self.writer.paste(group, key, old, np.zeros(plane.shape, bool), overwrite=True)
        ids = [int(i) for i in result.ids]
        for i in ids:
            self.writer.paste(group, key, i, result.labels == i, overwrite=False)
        self.writer.undo_stack.push(group)
        target.refresh()
        self.feedback.written()
        self.feedback.say(f"{len(ids)} objects found on frame {frame} "
                          f"({result.n_points} points, {result.points_per_second:.0f} points/s)")
        self.feedback.objects_changed()
        if on_done is not None:
            on_done(ids)
