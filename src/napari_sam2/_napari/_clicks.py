"""Clicks and boxes: one frame's mask for one object, computed in a job, pasted on return.

``Segmenter`` needs no viewer: it is given the image (anything ``SessionStore`` accepts: a
napari Image layer), the Labels target (``data`` + ``refresh()``), the stack and the prompts,
and works through its explicit collaborators (job queue, session store, ``LabelsWriter``,
``Feedback``). The controller reads the prompts from the prompt layers and calls it.
"""

from __future__ import annotations

import numpy as np

from napari_sam2._napari._big_labels import labels_array
from napari_sam2._napari._layers import LabelsWriter, UndoGroup
from napari_sam2._napari._messages import Feedback
from napari_sam2._napari._placed import PlacedMask
from napari_sam2._napari._sessions import SessionStore
from napari_sam2._napari._stack import StackRef
from napari_sam2._napari._workers import JobQueue
from napari_sam2.engine.session_record import BoxStep, ClearStep, PointsStep


class Segmenter:
    """Runs SAM on one frame for one object from all its prompts there, one job per call."""

    def __init__(
        self, jobs: JobQueue, sessions: SessionStore, writer: LabelsWriter, feedback: Feedback
    ):
        self.jobs = jobs
        self.sessions = sessions
        self.writer = writer
        self.feedback = feedback

    def segment(self, image, labels, ref: StackRef, frame: int, obj_id: int, points, point_labels,
                box=None) -> None:
        """Queue SAM on ``frame`` of the stack ``ref`` of ``image`` for ``obj_id``.

        Args:
            points: (N, 2) (row, col) in the frame's pixels; point_labels: (N,) 1 object,
                0 background. N may be 0.
            box: (r0, c0, r1, c1) or None. Neither points nor box: the frame's prompts and
                output of that object are cleared (its mask there becomes empty).

        The mask is pasted into ``labels`` on the plane ``ref.plane_key(frame)`` when the job
        returns, as one undoable step.
        """
        points = np.asarray(points, float).reshape(-1, 2)

        def job():
            session = self.sessions.get(image, ref)
            record = self.sessions.recorder
            if box is not None:
                some = len(points) > 0
                result = session.add_box(
                    frame, obj_id, box,
                    points=points if some else None, labels=point_labels if some else None,
                )
                record.add(session, BoxStep(frame, obj_id, tuple(box), tuple(map(tuple, points)),
                                            tuple(point_labels) if some else ()))
                return result
            if len(points):
                result = session.add_points(frame, obj_id, points, point_labels, clear=True)
                record.add(session, PointsStep(frame, obj_id, tuple(map(tuple, points)),
                                               tuple(point_labels)))
                return result
            session.clear_frame(frame, obj_id)
            record.add(session, ClearStep(frame, obj_id))
            return None

        self.feedback.busy(True)
        self.jobs.submit(
            job, returned=lambda result: self._segmented(labels, ref, frame, obj_id, result),
            errored=self.feedback.failed(f"segmenting object {obj_id} on frame {frame}"),
        )

    def _segmented(self, target, ref: StackRef, frame: int, obj_id: int, result) -> None:
        if not self.feedback.exists(target):
            self.feedback.error(f"the Labels layer '{target.name}' was removed: the mask of "
                                f"object {obj_id} on frame {frame} was not written")
            return
        if result is not None and obj_id in result.obj_ids:
            mask = PlacedMask.from_result(result, obj_id)  # its window only (issue 19)
        else:
            mask = PlacedMask.empty(labels_array(target).shape[-2:])
        group = UndoGroup(f"segment object {obj_id} on frame {frame}", target=target)
        self.writer.paste(group, ref.plane_key(frame), obj_id, mask)
        self.writer.undo_stack.push(group)
        target.refresh()
        self.feedback.written()
        self.feedback.say(f"object {obj_id}: {int(mask.sum())} pixels on frame {frame}")
        self.feedback.objects_changed()
