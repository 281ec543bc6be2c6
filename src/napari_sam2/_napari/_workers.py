"""Background work for the plugin: plain generators, and one queue that runs them in workers.

Everything heavy (model loading, frame encoding, decoding a click, propagation) runs in napari
``thread_worker``s; results come back through signals on the main thread, which alone touches
layers. The generators here know nothing about Qt, so tests can also drain them directly.

How a job runs is injected: a *worker factory* is any callable
``start(fn, *, yielded=None, returned=None, errored=None, finished=None) -> handle`` that runs
``fn()`` (draining it when it is a generator, each value to ``yielded``, its return value to
``returned``), hands an exception to ``errored``, always ends with ``finished``, and returns a
handle with ``quit()``. :func:`napari_worker` (the default) runs it in a napari thread worker;
:func:`run_now` runs it synchronously in the caller's thread (headless use and tests).

* :func:`load_model_steps` loads a model, yielding ``(done_bytes, total_bytes)`` download
  progress, and returns the model;
* :func:`propagation_steps` streams ``FrameResult``s of one or two propagation passes and stops
  within one frame of a cancel request;
* :class:`JobQueue` runs session-changing jobs one at a time (a ``TrackingSession`` is not
  meant to be changed from two threads at once).
"""

from __future__ import annotations

import inspect
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol


class WorkerFactory(Protocol):
    def __call__(self, fn: Callable, *, yielded: Callable | None = None,
                 returned: Callable | None = None, errored: Callable | None = None,
                 finished: Callable | None = None): ...


def napari_worker(fn: Callable, *, yielded=None, returned=None, errored=None, finished=None):
    """Run ``fn()`` in a napari thread worker, every handler connected before it starts."""
    from napari.qt.threading import create_worker

    worker = create_worker(fn, _start_thread=False, _ignore_errors=True)
    if yielded is not None and hasattr(worker, "yielded"):
        worker.yielded.connect(yielded)
    if returned is not None:
        worker.returned.connect(returned)
    if errored is not None:
        worker.errored.connect(errored)
    if finished is not None:
        worker.finished.connect(finished)
    worker.start()
    return worker


class _Finished:
    """The handle of a job :func:`run_now` has already finished (nothing left to quit)."""

    def quit(self) -> None:
        pass


def run_now(fn: Callable, *, yielded=None, returned=None, errored=None, finished=None):
    """Run ``fn()`` here and now, with the handlers a napari worker would call, in its order:
    each yielded value, then the return value (or the exception), then ``finished``."""
    try:
        try:
            out = fn()
            if inspect.isgenerator(out):
                gen, out = out, None
                while True:
                    try:
                        value = next(gen)
                    except StopIteration as stop:
                        out = stop.value
                        break
                    if yielded is not None:
                        yielded(value)
        except Exception as exc:  # noqa: BLE001 - handed over like a worker's errored signal
            if errored is None:
                raise
            errored(exc)
        else:
            if returned is not None:
                returned(out)
    finally:
        if finished is not None:
            finished()
    return _Finished()


def load_model_steps(name: str, checkpoint: str | None, device: str) -> Iterator[tuple[int, int]]:
    """Load a model in a helper thread, yielding its download progress; returns the model.

    Yields:
        ``(done_bytes, total_bytes)`` while the checkpoint downloads (nothing when cached).

    Returns:
        The ``Sam2Model`` in eval mode (raises whatever ``load_model`` raised).
    """
    from napari_sam2.model import load_model

    updates: queue.Queue = queue.Queue()
    result: dict = {}

    def target():
        try:
            result["model"] = load_model(
                name, checkpoint, device=device,
                progress=lambda done, total: updates.put((int(done), int(total or 0))),
            )
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            result["error"] = exc
        finally:
            updates.put(None)

    threading.Thread(target=target, name="napari-sam2-load", daemon=True).start()
    while (item := updates.get()) is not None:
        yield item
    if "error" in result:
        raise result["error"]
    return result["model"]


@dataclass(frozen=True)
class PropagationPlan:
    """What to propagate: from ``start`` over ``[first, last]`` (inclusive) of a stack.

    Attributes:
        start: the frame propagation starts from (usually the shown frame).
        first, last: the range of frames that may be written.
        forward, backward: which passes to run (both: forward first, then backward).
        obj_ids: objects to propagate, or None for all objects of the session.
        stop_after_absent: stop an object after this many frames in a row without it (the
            session's ``stop_after_absent``), or None to track every object to the range's end.
        divisions: a ``DivisionRule`` (``engine.division``) to find cell divisions in the
            forward pass (the session's ``divisions``), or None: no automatic divisions.
    """

    start: int
    first: int
    last: int
    forward: bool = True
    backward: bool = False
    obj_ids: tuple[int, ...] | None = None
    stop_after_absent: int | None = None
    divisions: object | None = None

    def __post_init__(self):
        if self.first > self.last:
            raise ValueError(
                f"the frame range {self.first}-{self.last} is empty: the first frame must not "
                "come after the last"
            )
        if not self.first <= self.start <= self.last:
            raise ValueError(
                f"propagation starts from the shown frame {self.start}, which is outside the "
                f"range {self.first}-{self.last}: show a frame in the range or change the range"
            )
        if not (self.forward or self.backward):
            raise ValueError("choose forward, backward or both")
        n = self.stop_after_absent
        if n is not None and (isinstance(n, bool) or int(n) != n or n < 1):
            raise ValueError(f"stop after {n!r} empty frames: use a whole number >= 1, or None "
                             "(never stop)")

    @property
    def direction(self) -> str:
        """"forward", "backward" or "both"."""
        return "both" if self.forward and self.backward else (
            "forward" if self.forward else "backward")

    @property
    def n_frames(self) -> int:
        """How many frames the passes may write (the start frame is written once per pass;
        fewer when every object stops early)."""
        n = 0
        if self.forward:
            n += self.last - self.start + 1
        if self.backward:
            n += self.start - self.first + 1
        return n


def propagation_steps(session, plan: PropagationPlan, stop: threading.Event):
    """Stream the ``FrameResult``s of ``plan``; returns the number of frames done.

    The engine's ``propagate_passes`` (the one code path of "both", shared with a replayed
    session record) closes the engine generator as soon as ``stop`` is set or the range ends,
    so a cancel takes effect within one frame and everything computed so far is kept. With
    ``plan.divisions`` (forward pass only) a frame may come again after a division was found
    (with the daughters and without the parent); it counts once more.
    """
    from napari_sam2.engine.passes import propagate_passes

    return (yield from propagate_passes(
        session, plan.start, direction=plan.direction, first=plan.first, last=plan.last,
        obj_ids=plan.obj_ids, stop_after_absent=plan.stop_after_absent, stop=stop,
        divisions=plan.divisions,
    ))


def prefetch_steps(session, frames: list[int], stop: threading.Event):
    """Encode (and cache) ``frames`` of a session one by one; yields each frame index."""
    for frame in frames:
        if stop.is_set():
            return
        session.encode_frame(frame)
        yield frame


class JobQueue:
    """Runs jobs (functions or generators) one at a time, in order, through ``start_worker``.

    ``submit(fn, ...)`` queues ``fn()``; its ``yielded``/``returned``/``errored`` handlers are
    connected before the worker starts. ``busy`` tells whether a job is running.
    """

    def __init__(self, start_worker: WorkerFactory = napari_worker):
        self._start_worker = start_worker
        self._pending: list[tuple] = []
        self.worker = None
        self._running: object | None = None  # a ticket per job: tells its finish from others'
        self.on_idle: Callable[[], None] | None = None

    @property
    def busy(self) -> bool:
        return self.worker is not None

    def submit(
        self,
        fn: Callable,
        *,
        yielded: Callable | None = None,
        returned: Callable | None = None,
        errored: Callable | None = None,
        finished: Callable | None = None,
    ) -> None:
        self._pending.append((fn, yielded, returned, errored, finished))
        if self.worker is None:
            self._start_next()

    def clear_pending(self) -> None:
        self._pending.clear()

    def quit(self) -> None:
        """Drop queued jobs and ask the running generator job to stop at its next yield."""
        self._pending.clear()
        if self.worker is not None and hasattr(self.worker, "quit"):
            self.worker.quit()

    def _start_next(self) -> None:
        if not self._pending:
            self.worker = self._running = None
            if self.on_idle is not None:
                self.on_idle()
            return
        fn, yielded, returned, errored, finished = self._pending.pop(0)
        ticket = object()

        def done():
            if finished is not None:
                finished()
            self._on_finished(ticket)

        self.worker = self._running = ticket  # busy from here on (also while run_now runs it)
        handle = self._start_worker(
            fn, yielded=yielded, returned=returned, errored=errored, finished=done
        )
        if self._running is ticket:  # still running (a synchronous factory has finished it)
            self.worker = handle

    def _on_finished(self, ticket) -> None:
        if self._running is ticket:
            self._start_next()
