"""Tracking actions of the controller: masks as prompts and streamed propagation.

Mixed into ``Sam2Controller`` (see ``_controller.py`` for the state it uses). Propagation runs
``propagation_steps`` in the job queue; every streamed ``FrameResult`` is pasted on the main
thread under the no-overwrite rules, as one undoable step for the whole run.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from napari_sam2._napari._layers import UndoGroup, labels_on_plane
from napari_sam2._napari._stack import StackRef
from napari_sam2._napari._workers import PropagationPlan, propagation_steps


class TrackingActions:
    # ------------------------------------------------------------------ masks as prompts
    def mask_as_prompt(self, obj_ids=None) -> None:
        """Use the Labels pixels on the shown frame as the prompt of objects there.

        ``obj_ids`` None: the current object; ``"all"``: every label on the frame (e.g. from
        Cellpose). The painted masks stay as they are; later propagation starts from them.
        """
        if not self._check_ready():
            return
        ref, frame = self.current_ref(), self.current_frame()
        plane = np.array(self.labels_layer.data[ref.plane_key(frame)])
        if obj_ids == "all":
            ids = labels_on_plane(plane)
        else:
            ids = [self.current_obj] if obj_ids is None else list(obj_ids)
        ids = [i for i in ids if (plane == i).any()]
        if not ids:
            self._error(
                f"no labelled pixels of {obj_ids or self.current_obj} on frame {frame}: "
                "paint the object first"
            )
            return
        masks = {i: plane == i for i in ids}
        layer = self.image_layer
        self.objects |= set(ids)

        def job():
            session = self.sessions.get(layer, ref)
            for i, mask in masks.items():
                session.add_mask(frame, i, mask)
            return ids

        self.busy_changed.emit(True)
        self.jobs.submit(
            job, errored=self._failed(f"using the painted masks on frame {frame}"),
            returned=lambda done: self._masks_used(done, frame),
        )

    def _masks_used(self, ids, frame: int) -> None:
        self.say(f"objects {ids} use their painted masks on frame {frame}")
        self.objects_changed.emit()

    # ------------------------------------------------------------------ propagation
    def propagate(self, direction: str = "forward", frame_range=None, obj_ids=None) -> bool:
        """Propagate from the shown frame; ``direction`` forward/backward/both."""
        if not self._check_ready():
            return False
        ref, start = self.current_ref(), self.current_frame()
        session = self.sessions.get(self.image_layer, ref, create=False)
        known = list(session.obj_ids) if session is not None else []
        wanted = known if not obj_ids else [o for o in obj_ids if o in known]
        if not wanted:
            self._error("nothing to propagate: click on an object (or use a painted mask) first")
            return False
        n = self.num_frames()
        first, last = (0, n - 1) if frame_range is None else (int(v) for v in frame_range)
        first, last = max(0, first), min(n - 1, last)
        try:
            plan = PropagationPlan(
                start=start, first=first, last=last, forward=direction in ("forward", "both"),
                backward=direction in ("backward", "both"),
                obj_ids=tuple(wanted) if obj_ids else None,
            )
        except ValueError as exc:
            self._error(str(exc))
            return False
        return self._start_propagation(session, ref, plan)

    def _start_propagation(self, session, ref: StackRef, plan: PropagationPlan) -> bool:
        from napari.utils import progress

        self.prefetcher.stop()
        stop = threading.Event()
        self._stop = stop
        self._run = {
            "ref": ref, "plan": plan, "done": 0, "t0": time.perf_counter(), "stopped": None,
            "image": self.image_layer, "labels": self.labels_layer,
            "group": UndoGroup(f"propagate from frame {plan.start}", target=self.labels_layer),
            "bar": progress(total=plan.n_frames, desc="SAM 2 propagation"),
        }

        def job():
            return (yield from propagation_steps(session, plan, stop))

        self.busy_changed.emit(True)
        self.say(f"propagating from frame {plan.start} over {plan.first}-{plan.last} ...")
        self.jobs.submit(
            job, yielded=self._on_frame, errored=self._failed("propagating"),
            finished=self._on_propagation_done,
        )
        return True

    def _on_frame(self, result) -> None:
        # Qt calls below (progress bar, refresh) may process events, so this handler can be
        # re-entered: read and update the run state first, then call out.
        run = self._run
        if not run or run["stopped"]:
            return  # frames that arrive after a stop are not written
        wanted = run["plan"].obj_ids or result.obj_ids
        for obj in wanted:
            if obj in result.obj_ids:
                self._paste(run["group"], run["ref"], result.frame, obj, result.mask_of(obj))
        run["done"] += 1
        done = run["done"]
        fps = done / max(time.perf_counter() - run["t0"], 1e-6)
        self.progress.emit(done, run["plan"].n_frames, fps)
        if self.follow:
            self.go_to_frame(result.frame)
        self.labels_layer.refresh()
        run["bar"].update(1)

    def _on_propagation_done(self) -> None:
        run, self._run = self._run, {}
        cancelled = self._stop is not None and self._stop.is_set()
        self._stop = None
        run["bar"].close()
        labels = run["labels"]
        if labels in self.viewer.layers:
            self.undo_stack.push(run["group"])
        if run["stopped"]:
            kept = (f"; the {run['done']} frames written stay in '{labels.name}'"
                    if labels in self.viewer.layers else "")
            self._error(f"propagation stopped: {run['stopped']}{kept}")
            self.objects_changed.emit()
            return
        self.record_provenance()
        elapsed = time.perf_counter() - run["t0"]
        verb = "cancelled after" if cancelled else "propagated"
        fps = run["done"] / max(elapsed, 1e-6)
        self.say(f"{verb} {run['done']} frames in {elapsed:.1f} s ({fps:.1f} frames/s)")
        self.objects_changed.emit()

    def _abort_run(self, reason: str) -> None:
        """Stop the running propagation for ``reason`` (said once, when it has stopped)."""
        if self._run and not self._run["stopped"]:
            self._run["stopped"] = reason
            self._stop.set()

    def cancel(self) -> None:
        """Stop the running propagation after the frame being computed (kept, like all
        frames before it). Clicks queued behind it still run."""
        if self._stop is not None:
            self._stop.set()

    @property
    def propagating(self) -> bool:
        return self._stop is not None
