"""The widget's session records: one ``SessionRecord`` per ``TrackingSession``, a step appended
for every action that changed it, in order (numpy only; no napari, no Qt).

``SessionStore`` owns a ``Recorder`` and starts a record when it creates a session; the parts
that change sessions append their step right after the session call succeeded, on the job's
thread (jobs run one at a time, so the order is the order the session saw):

* ``Segmenter`` (clicks, boxes, a frame's prompts all deleted): ``PointsStep`` / ``BoxStep`` /
  ``ClearStep``;
* ``Tracker``: ``MaskStep`` per painted mask used as prompt ("Track all labels here" too), and
  ``PropagateStep`` when a run ends (``frames_done`` when it was cancelled or failed);
* ``Divider``: ``DivideStep`` (a division marked by hand, with the daughters' masks);
  ``PropagateStep.divisions`` holds the rule of a run that found divisions;
* ``SessionStore``: ``RemoveStep`` (delete objects), ``IntensityStep`` (contrast limits);
* the controller: ``UndoStep`` and ``OverwriteStep`` (they change the labels, not the session,
  but a replay that rebuilds the labels needs them).

The records of the shown image are put in the Labels layer's metadata (``record_provenance``),
which both writers save with the labels; ``docs/sessions.md`` describes the format.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from napari_sam2.engine.session_record import (
    FORMAT,
    VERSION,
    PropagateStep,
    SessionRecord,
    UndoStep,
    step_to_dict,
)

#: key of the records document inside the ``napari_sam2`` provenance of a Labels layer
RECORDS_KEY = "session_records"


def checkpoint_sha256(name: str, checkpoint=None) -> str | None:
    """sha256 of the weights file ``load_model(name, checkpoint)`` used: of ``checkpoint``
    itself, of the shipped file, or from the download cache's record; None when unknown."""
    from napari_sam2.model.download import (
        CHECKPOINT_URLS,
        cache_dir_path,
        checkpoint_filename,
        record_path,
        sha256_of,
    )
    from napari_sam2.model.loading import SHIPPED_WEIGHTS, shipped_weights_path

    if checkpoint:
        return sha256_of(Path(checkpoint).expanduser())
    if name in SHIPPED_WEIGHTS:
        return sha256_of(shipped_weights_path(name))
    if name in CHECKPOINT_URLS:
        try:
            record = record_path(cache_dir_path() / checkpoint_filename(name))
            return str(json.loads(record.read_text())["sha256"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
    return None


class Recorder:
    """Session records of the widget's sessions (keyed by the session object)."""

    def __init__(self):
        self.model_name = "custom"
        self.checkpoint_sha256: str | None = None
        self._records: dict[int, tuple[object, SessionRecord, list[dict]]] = {}

    # ------------------------------------------------------------------ lifetime
    def started(self, session, layer, ref) -> SessionRecord:
        """Start the (empty) record of a session just created over ``ref`` of ``layer``."""
        from napari_sam2._napari._sessions import image_shape

        st = session.state
        shape = image_shape(layer)
        scale, translate = getattr(layer, "scale", None), getattr(layer, "translate", None)
        record = SessionRecord(
            model=self.model_name, checkpoint_sha256=self.checkpoint_sha256,
            image_shape=shape, stack_axis=ref.stack_axis, other_axes=dict(ref.fixed),
            intensity_range=st.intensity_range,
            scale=None if scale is None else tuple(scale)[-len(shape):],
            translate=None if translate is None else tuple(translate)[-len(shape):],
            bfloat16=st.uses_bfloat16,
            device=str(session.device), rgb=bool(getattr(layer, "rgb", False)),
            image_name=str(getattr(layer, "name", "")), window=session.window,
        )
        self._records[id(session)] = (session, record, [])
        return record

    def adopt(self, session, record: SessionRecord) -> None:
        """Make ``record`` (reopened with saved labels and replayed on ``session``) the
        session's record: later steps are appended to it."""
        self._records[id(session)] = (session, record, [step_to_dict(s) for s in record.steps])

    def forget(self, session) -> None:
        self._records.pop(id(session), None)

    def clear(self) -> None:
        self._records.clear()

    # ------------------------------------------------------------------ steps
    def add(self, session, step) -> None:
        """Append ``step`` to the record of ``session`` (none: a session not recorded)."""
        entry = self._records.get(id(session))
        if entry is not None and entry[0] is session:
            entry[1].append(step)
            entry[2].append(step_to_dict(step))  # serialised once (masks are run-length coded)

    def add_to_all(self, step) -> None:
        """Append ``step`` to every record (e.g. the overwrite setting, which all share)."""
        for session, _, _ in list(self._records.values()):
            self.add(session, step)

    def undone(self, sessions, plane_keys) -> None:
        """An Undo reverted SAM's writes on ``plane_keys``: an ``UndoStep`` for each session
        (of ``[(StackRef, session), ...]``) whose stack holds one of those planes."""
        for ref, session in sessions:
            if any(all(key[a] == i for a, i in ref.fixed) for key in plane_keys):
                self.add(session, UndoStep())

    def record_of(self, session) -> SessionRecord | None:
        entry = self._records.get(id(session))
        return entry[1] if entry is not None and entry[0] is session else None

    def document(self, sessions) -> dict:
        """The records of ``sessions`` as one JSON-able document (what the writers save)."""
        records = []
        for session in sessions:
            entry = self._records.get(id(session))
            if entry is None or entry[0] is not session or not entry[2]:
                continue  # not recorded, or a session only looked at (prefetched)
            head = replace(entry[1], steps=[]).to_dict()
            head["steps"] = list(entry[2])
            records.append(head)
        return {"format": FORMAT, "version": VERSION, "records": records}


def recorded_propagation(recorder: Recorder, session, plan, stop):
    """``propagation_steps(session, plan, stop)`` that appends its ``PropagateStep`` when it
    ends (with ``frames_done`` when it was stopped early or failed after changing frames)."""
    from napari_sam2._napari._workers import propagation_steps

    done, complete = 0, False
    try:
        for result in propagation_steps(session, plan, stop):
            done += 1
            yield result
        complete = not stop.is_set()
    finally:
        if complete or done:
            recorder.add(session, PropagateStep(
                start=plan.start, direction=plan.direction, obj_ids=plan.obj_ids,
                stop_after_absent=plan.stop_after_absent, first=plan.first, last=plan.last,
                frames_done=None if complete else done, divisions=plan.divisions,
            ))
    return done
