"""Reopening saved labels: their session records restore the objects, the prompts and the
sessions, so the user goes on correcting and propagating as if napari had never closed.

What "restore" means (``docs/sessions.md``):

* the saved labels are kept exactly as they are (manual edits included); nothing is pasted;
* the objects of the records join the widget's objects, and their prompts (the clicks and
  boxes still in force, on the frames and stacks they were given) fill the prompt layers;
* the image's contrast limits are set to the record's last intensity window (what the model saw);
  the "overwrite other labels" setting stays the widget's (the record notes it);
* each record is replayed, in a background job, on a fresh session over its stack: the session
  then holds exactly the memory it had when the labels were saved (same machine and model), so
  the next click or propagation gives what it would have given then. The replay also tells which
  pixels SAM wrote; those still holding SAM's value are SAM's again (a later correction may
  change them), every other pixel counts as the user's and SAM leaves it alone.

Restoring needs the image (same non-channel shape) and a model; picked before a model is loaded,
the objects and prompts are restored at once and the sessions when the model is set. An image
that already has a session is not restored over (the message says so).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from napari_sam2._napari._big_labels import chunked_labels, labels_array, needs_chunked
from napari_sam2._napari._placed import box_slices
from napari_sam2._napari._recorder import RECORDS_KEY
from napari_sam2._napari._replay import record_ref, replay_labels
from napari_sam2._napari._sessions import image_shape
from napari_sam2._napari._writer import PROVENANCE_KEY
from napari_sam2.engine.session_record import (
    BoxStep,
    IntensityStep,
    OverwriteStep,
    PointsStep,
    SessionRecord,
    load_records,
)
from napari_sam2.errors import EXPECTED_ERRORS, one_line


def saved_records(layer) -> list[SessionRecord]:
    """The session records saved with a Labels layer ([] when it has none); DamagedFileError
    naming the layer when they cannot be read."""
    meta = getattr(layer, "metadata", None) or {}
    doc = (meta.get(PROVENANCE_KEY) or {}).get(RECORDS_KEY)
    if doc is None:
        return []
    return load_records(doc, source=f"the Labels layer '{layer.name}'")


def of_image(record: SessionRecord, image) -> bool:
    """Whether ``record`` was made on ``image``: same non-channel shape and layer name."""
    return (tuple(record.image_shape) == image_shape(image)
            and record.image_name in ("", str(getattr(image, "name", ""))))


def restorable(layer, image) -> bool:
    """Whether ``layer`` is a Labels layer saved with a session record of ``image`` (never
    raises: a damaged record is reported when the layer is picked)."""
    if image is None or getattr(layer, "_type_string", "") != "labels":
        return False
    try:
        return any(of_image(r, image) for r in saved_records(layer))
    except Exception:  # noqa: BLE001 - only a hint for picking the layer
        return False


def final_intensity(record: SessionRecord):
    """The intensity window the record's session ended with."""
    rng = record.intensity_range
    for step in record.steps:
        if isinstance(step, IntensityStep):
            rng = step.intensity_range
    return rng


def prompts_snapshot(records: list[SessionRecord], ndim: int) -> dict:
    """The clicks and boxes in force in ``records`` as a ``PromptLayers.restore`` snapshot
    (n-D data coordinates: the frame on the stack axis, the record's other axes)."""
    points, point_ids, positive, boxes, box_ids = [], [], [], [], []
    for record in records:
        ref = record_ref(record, ndim)
        for (frame, obj), step in record.prompts().items():
            if not isinstance(step, (PointsStep, BoxStep)):
                continue  # a mask prompt is in the labels themselves
            prefix = np.zeros(ndim - 2)
            for axis, index in ref.fixed:
                prefix[axis] = index
            if ref.stack_axis is not None:
                prefix[ref.stack_axis] = frame
            for (r, c), lab in zip(step.points, step.labels):
                points.append([*prefix, r, c])
                point_ids.append(obj)
                positive.append(bool(lab))
            if isinstance(step, BoxStep):
                r0, c0, r1, c1 = step.box
                boxes.append(np.array([[*prefix, r, c] for r, c in
                                       ((r0, c0), (r0, c1), (r1, c1), (r1, c0))]))
                box_ids.append(obj)
    out = {}
    if points:
        out["points"] = (np.array(points, float), pd.DataFrame(
            {"obj_id": np.array(point_ids, int), "positive": np.array(positive, bool)}))
    if boxes:
        out["boxes"] = (boxes, pd.DataFrame({"obj_id": np.array(box_ids, int)}))
    return out


def restore(c, layer) -> bool:
    """Restore the session records saved with ``layer`` (a Labels layer just picked) for the
    controller ``c``'s image; True when a restore began. Says why when it does not."""
    image = c.image_layer
    try:
        records = saved_records(layer)
    except EXPECTED_ERRORS as exc:
        c._error(one_line(exc))
        return False
    if not records or image is None or (image, layer) == c.restored:
        return False  # nothing to restore, or restored already
    shape = image_shape(image)
    mine = [r for r in records if of_image(r, image)]
    if not mine:
        made = records[0]
        c.say(f"the session saved with '{layer.name}' was made on the image "
              f"'{made.image_name}' of shape {made.image_shape}, not on '{image.name}' of shape "
              f"{shape}: it was not restored (open that image, named so, and pick the labels "
              "again)")
        return False
    if any(s.obj_ids for _, s in c.sessions.sessions_of(image)):
        c.say(f"'{image.name}' already has a SAM session: the prompts saved with "
              f"'{layer.name}' were not restored (open the image afresh to restore them)")
        return False
    if mine[0].intensity_range is not None:  # what the model saw first (the replay moves on)
        image.contrast_limits = mine[0].intensity_range
    if len(shape) > 2 and mine[0].stack_axis is not None:
        c.set_stack_axis(mine[0].stack_axis)
    c.objects |= {o for r in mine for o in r.obj_ids}
    c.prompts.restore(prompts_snapshot(mine, len(shape)))
    c.objects_changed.emit()
    c.pending_restore = (image, layer, mine)
    c.restored = (image, layer)
    if c.sessions.model is None:
        c.say(f"restored {len(c.objects)} objects and their prompts from '{layer.name}'; load "
              "a model to rebuild the session")
        return True
    rebuild(c)
    return True


def rebuild(c) -> bool:
    """Replay the pending records on fresh sessions (a job), then give SAM back its pixels
    and set the contrast limits the session ended with. True when a rebuild started."""
    if c.pending_restore is None or c.sessions.model is None:
        return False
    image, layer, records = c.pending_restore
    c.pending_restore = None
    c.restoring = True
    c.restore_notes = []
    c.prefetcher.stop()  # no frame is encoded beside the replay (it changes the intensity)
    if records[0].model != c.model_name:
        c.say(f"the session was recorded with {records[0].model}, the model now is "
              f"{c.model_name}: the rebuilt session follows the model now loaded")
    shape = tuple(labels_array(layer).shape)

    def job():
        writers = []
        # the records' stacks are disjoint planes of it (chunked for a huge image)
        scratch = chunked_labels(shape) if needs_chunked(shape) else np.zeros(shape, np.int32)
        for record in records:
            session = c.sessions.get(image, record_ref(record, len(shape)))
            if session.window != record.window:  # said on the main thread, in done()
                c.restore_notes.append(
                    f"the session was recorded with window {record.window}, the widget's "
                    f"window setting gives {session.window}: the rebuilt session follows the "
                    "setting now chosen")
            c.sessions.recorder.adopt(session, record)
            if session.state.intensity_range != record.intensity_range:
                session.set_intensity_range(record.intensity_range)
            writer = replay_labels(record, session, scratch)
            writers.append(writer)
            if writer.overwrite != c.overwrite:  # the widget's setting goes on (not the saved)
                c.sessions.recorder.add(session, OverwriteStep(c.overwrite))
        return writers

    def done(writers) -> None:
        c.restoring = False
        while c.restore_notes:
            c.say(c.restore_notes.pop(0))
        if layer not in c.viewer.layers:
            return
        rng = final_intensity(records[-1])
        if rng is not None and image in c.viewer.layers:
            image.contrast_limits = rng  # the window the session ended with
        live = c.writer.painter(layer)
        for writer in writers:
            for painter in writer.painters.values():
                for (pid, label), owned in list(painter._owned.items()):
                    key = tuple(slice(None) if v is None else v for v in pid)
                    box = owned.box  # SAM's pixels that the saved labels still hold
                    now = np.asarray(labels_array(layer)[key[:-2] + box_slices(box)])
                    live._set_owned(key, label, owned.over(box) & (now == label), box)
        # the replayed sessions' objects: daughters of divisions a propagation found are
        # objects too, daughters of a division that was undone are not
        alive = {o for _, s in c.sessions.sessions_of(image) for o in s.obj_ids}
        c.objects = (c.objects - {o for r in records for o in r.obj_ids}) | alive
        steps = sum(len(r.steps) for r in records)
        c.say(f"session restored from '{layer.name}': {len(c.objects)} objects, {steps} steps "
              "replayed; go on correcting and propagating")
        c.objects_changed.emit()
        c.prefetch_current()

    def failed(exc) -> None:
        c.restoring = False
        c.feedback.failed(f"rebuilding the session of '{layer.name}'")(exc)

    c.say(f"rebuilding the session saved with '{layer.name}' ...")
    c.busy_changed.emit(True)
    c.jobs.submit(job, returned=done, errored=failed)
    return True
