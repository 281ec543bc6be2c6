"""Masks as prompts and streamed propagation, without a viewer.

``Tracker`` is given everything it works on (image, Labels target, stack, frames) and works
through explicit collaborators: the job queue and session store it shares with clicks, the
``LabelsWriter`` that pastes under the no-overwrite rules and keeps undo, ``Feedback`` for
messages, and optionally the prefetcher (stopped while a propagation runs) and a progress-bar
factory (napari's activity panel). Propagation runs ``propagation_steps`` in the job queue;
every streamed ``FrameResult`` is pasted on the handlers' thread, as one undoable step for the
whole run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from napari_sam2._napari._layers import LabelsWriter, UndoGroup
from napari_sam2._napari._messages import Feedback
from napari_sam2._napari._placed import placed_of
from napari_sam2._napari._recorder import recorded_propagation
from napari_sam2._napari._sessions import SessionStore
from napari_sam2._napari._stack import StackRef
from napari_sam2._napari._workers import JobQueue, PropagationPlan
from napari_sam2.engine.session_record import MaskStep, PropagationWrites


@dataclass
class PropagationRun:
    """The state of the running propagation (read and written on the handlers' thread)."""

    ref: StackRef
    plan: PropagationPlan
    image: object
    labels: object
    group: UndoGroup
    follow: Callable[[int], None] | None
    on_end: Callable[[], None] | None
    bar: object | None
    t0: float
    done: int = 0
    stopped: str | None = None  # why it was stopped (a layer removed), None when it was not
    known: frozenset = frozenset()  # the session's objects when the run started
    writes: PropagationWrites = field(default_factory=PropagationWrites)  # what to paste


class Tracker:
    """Masks as prompts and one streamed propagation at a time."""

    def __init__(
        self, jobs: JobQueue, sessions: SessionStore, writer: LabelsWriter, feedback: Feedback,
        *, prefetcher=None, progress_bar: Callable | None = None,
    ):
        self.jobs = jobs
        self.sessions = sessions
        self.writer = writer
        self.feedback = feedback
        self.prefetcher = prefetcher
        self.progress_bar = progress_bar  # (total, desc) -> object with update(n) and close()
        self.run: PropagationRun | None = None
        self._stop: threading.Event | None = None

    # ------------------------------------------------------------------ masks as prompts
    def mask_as_prompt(self, image, ref: StackRef, frame: int, masks: dict) -> None:
        """Use ``masks`` ({obj_id: (H, W) bool}) as the prompts of those objects on ``frame``.

        The painted masks stay as they are; later propagation starts from them.
        """
        ids = list(masks)

        def job():
            session = self.sessions.get(image, ref)
            for i, mask in masks.items():
                session.add_mask(frame, i, mask, others=False)
                self.sessions.recorder.add(session, MaskStep(frame, i, mask))
            return ids

        self.feedback.busy(True)
        self.jobs.submit(
            job, errored=self.feedback.failed(f"using the painted masks on frame {frame}"),
            returned=lambda done: self._masks_used(done, frame),
        )

    def _masks_used(self, ids, frame: int) -> None:
        self.feedback.say(f"objects {ids} use their painted masks on frame {frame}")
        self.feedback.written()  # the provenance (and its session record) gains the masks
        self.feedback.objects_changed()

    # ------------------------------------------------------------------ propagation
    def propagate(
        self, image, labels, ref: StackRef, *, start: int, n_frames: int,
        direction: str = "forward", frame_range=None, obj_ids=None,
        follow: Callable[[int], None] | None = None, on_end: Callable[[], None] | None = None,
        stop_after_absent: int | None = None, divisions=None,
    ) -> bool:
        """Propagate the objects of the stack ``ref`` of ``image`` from ``start``, writing into
        ``labels``; ``direction`` forward/backward/both, ``frame_range`` (first, last) or None
        for all ``n_frames``, ``obj_ids`` None for all objects; ``follow(frame)`` after each
        frame written, ``on_end()`` after the run ends (not when stopped by a removed layer);
        ``stop_after_absent`` N: an object stops after N frames in a row without it (None:
        never); ``divisions`` a ``DivisionRule`` to find divisions going forward (None: none).
        Returns whether a run was started."""
        planned = self.plan(image, ref, start=start, n_frames=n_frames, direction=direction,
                            frame_range=frame_range, obj_ids=obj_ids,
                            stop_after_absent=stop_after_absent, divisions=divisions)
        if planned is None:
            return False
        self.start(planned[0], image, labels, ref, planned[1], follow, on_end)
        return True

    def plan(
        self, image, ref: StackRef, *, start: int, n_frames: int, direction: str = "forward",
        frame_range=None, obj_ids=None, stop_after_absent: int | None = None, divisions=None,
    ) -> tuple[object, PropagationPlan] | None:
        """(session, plan) of a propagation, or None after saying why there is none."""
        session = self.sessions.get(image, ref, create=False)
        known = list(session.obj_ids) if session is not None else []
        wanted = known if not obj_ids else [o for o in obj_ids if o in known]
        if not wanted:
            self.feedback.error(
                "nothing to propagate: click on an object (or use a painted mask) first"
            )
            return None
        first, last = (0, n_frames - 1) if frame_range is None else (int(v) for v in frame_range)
        first, last = max(0, first), min(n_frames - 1, last)
        try:
            plan = PropagationPlan(
                start=start, first=first, last=last, forward=direction in ("forward", "both"),
                backward=direction in ("backward", "both"),
                obj_ids=tuple(wanted) if obj_ids else None, stop_after_absent=stop_after_absent,
                divisions=divisions,
            )
        except ValueError as exc:
            self.feedback.error(str(exc))
            return None
        return session, plan

    def start(self, session, image, labels, ref, plan: PropagationPlan, follow=None,
              on_end=None) -> None:
        """Run ``plan`` (from ``plan()``) on ``session``, writing into ``labels``."""
        if self.prefetcher is not None:
            self.prefetcher.stop()
        stop = threading.Event()
        self._stop = stop
        bar = None
        if self.progress_bar is not None:
            bar = self.progress_bar(plan.n_frames, "SAM 2 propagation")
        self.run = PropagationRun(
            ref=ref, plan=plan, image=image, labels=labels, follow=follow, on_end=on_end, bar=bar,
            group=UndoGroup(f"propagate from frame {plan.start}", target=labels),
            t0=time.perf_counter(), known=frozenset(session.obj_ids),
            writes=PropagationWrites(plan.obj_ids, known=session.obj_ids, start=plan.start,
                                     mask_of=placed_of),
        )

        def job():
            return (yield from recorded_propagation(self.sessions.recorder, session, plan, stop))

        self.feedback.busy(True)
        self.feedback.say(f"propagating from frame {plan.start} over {plan.first}-{plan.last} ...")
        self.jobs.submit(
            job, yielded=self._on_frame, errored=self.feedback.failed("propagating"),
            finished=self._on_done,
        )

    def _on_frame(self, result) -> None:
        # Qt calls below (progress bar, refresh) may process events, so this handler can be
        # re-entered: read and update the run state first, then call out.
        run = self.run
        if run is None or run.stopped:
            return  # frames that arrive after a stop are not written
        key = run.ref.plane_key(result.frame)
        # daughters found in this run are new objects; a frame that comes again after a
        # division first clears the parent, so that the daughters may take its pixels
        pastes, again = run.writes(result)
        if not again:
            run.done += 1
        for obj, mask in pastes:
            self.writer.paste(run.group, key, obj, mask)
        done = run.done
        fps = done / max(time.perf_counter() - run.t0, 1e-6)
        self.feedback.progress(done, run.plan.n_frames, fps)
        if run.follow is not None:
            run.follow(result.frame)
        run.labels.refresh()
        if run.bar is not None:
            run.bar.update(1)

    def _on_done(self) -> None:
        run, self.run = self.run, None
        cancelled = self._stop is not None and self._stop.is_set()
        self._stop = None
        if run.bar is not None:
            run.bar.close()
        kept = self.feedback.exists(run.labels)
        divided = self._divisions_of(run)
        if kept:
            if divided:
                run.group.undone = lambda: self._undo_divisions(run, divided)
            self.writer.undo_stack.push(run.group)
        # a last progress: (0, 0) when cancelled or stopped (nothing in progress any more);
        # all frames done when the plan counted one more (the start frame, in both passes)
        elapsed = time.perf_counter() - run.t0
        fps = run.done / max(elapsed, 1e-6)
        if cancelled or run.stopped:
            self.feedback.progress(0, 0, 0.0)
        elif run.done != run.plan.n_frames:
            self.feedback.progress(run.done, run.done, fps)
        if run.stopped:
            where = f"; the {run.done} frames written stay in '{run.labels.name}'" if kept else ""
            self.feedback.error(f"propagation stopped: {run.stopped}{where}")
            self.feedback.objects_changed()
            return
        self.feedback.written()
        if run.on_end is not None:
            run.on_end()
        verb = "cancelled after" if cancelled else "propagated"
        ended = ""
        plan = run.plan  # a backward pass from frame 0 has nothing to do (not an early end)
        possible = plan.n_frames - (1 if plan.backward and plan.start == 0 else 0)
        if plan.stop_after_absent and not cancelled and run.done < possible:
            ended = (f"; the objects ended before the range did (not found on "
                     f"{plan.stop_after_absent} frames in a row)")
        found = "".join(f"; object {p} divided on frame {f} into {' and '.join(map(str, d))}"
                        for p, f, d in divided)
        self.feedback.say(f"{verb} {run.done} frames in {elapsed:.1f} s ({fps:.1f} frames/s)"
                          f"{ended}{found}")
        self.feedback.objects_changed()

    def _divisions_of(self, run: PropagationRun) -> list[tuple[int, int, list[int]]]:
        """(parent, frame, daughters) of the divisions found during ``run``."""
        from napari_sam2._napari._division import found_divisions

        session = self.sessions.get(run.image, run.ref, create=False)
        return [] if session is None else found_divisions(session, run.known)

    def _undo_divisions(self, run: PropagationRun, divided) -> None:
        """The run was undone: take the divisions it found back out of the session."""
        from napari_sam2._napari._division import revert_divisions

        session = self.sessions.get(run.image, run.ref, create=False)
        if session is not None:
            revert_divisions(session, divided)

    def layer_removed(self, layer) -> bool:
        """Stop the run if it reads or writes ``layer`` (said once, when it has stopped).

        ``==``, not ``is``: the plugin's viewer hands out proxies of the layers, its events the
        layers themselves (a proxy compares equal to the layer it wraps). Returns whether the
        run used that layer.
        """
        run = self.run
        if run is None or not (layer == run.image or layer == run.labels):
            return False
        if not run.stopped:
            kind = "image" if layer == run.image else "Labels"
            run.stopped = f"the {kind} layer '{layer.name}' was removed"
            self._stop.set()
        return True

    def cancel(self) -> None:
        """Stop the running propagation after the frame being computed (kept, like all
        frames before it). Clicks queued behind it still run."""
        if self._stop is not None:
            self._stop.set()

    @property
    def propagating(self) -> bool:
        return self._stop is not None
