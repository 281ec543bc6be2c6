"""Cell divisions by hand: which click the widget expects, and the job that divides.

Marking a division is a short dialogue on one frame (the first frame on which the two daughters
are apart): the user picks the parent (the current object) and presses *Mark division*; the
next two clicks on that frame are the daughters, each a new object with a new id. After the
second click one job asks SAM for each daughter's mask from its click (as a click on a new
object would) and calls ``TrackingSession.divide``: the parent's track ends on the frame
before, the daughters start on this frame with their masks as prompts. The labels change as
one undoable step (the daughters' masks written, the parent's SAM pixels from this frame on
cleared); undoing it also takes the division back out of the session and its lineage.

:class:`DivisionMark` is the dialogue's state (no Qt, no napari); :class:`Divider` runs the job
through the same collaborators as clicks (job queue, session store, ``LabelsWriter``,
``Feedback``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from napari_sam2._napari._big_labels import labels_array
from napari_sam2._napari._layers import LabelsWriter, UndoGroup, _plane_id, label_planes
from napari_sam2._napari._messages import Feedback
from napari_sam2._napari._placed import PlacedMask
from napari_sam2._napari._sessions import SessionStore
from napari_sam2._napari._stack import StackRef
from napari_sam2._napari._workers import JobQueue
from napari_sam2.engine.session_record import DivideStep


@dataclass
class DivisionMark:
    """A division being marked: ``parent`` divides on ``frame`` of the stack ``ref`` into
    ``daughters`` (new ids, in click order); ``clicks`` are the (row, col) clicked so far."""

    parent: int
    frame: int
    ref: StackRef
    daughters: tuple[int, int]
    clicks: list[tuple[float, float]] = field(default_factory=list)

    @property
    def expected(self) -> int:
        """The id of the daughter the next click is for."""
        return self.daughters[len(self.clicks)]

    @property
    def complete(self) -> bool:
        return len(self.clicks) == len(self.daughters)

    def prompt(self) -> str:
        """The status line: which click is expected."""
        n = len(self.clicks)
        which = ("first", "second")[n]
        return (f"Division of object {self.parent} on frame {self.frame}: click the {which} "
                f"daughter ({n + 1} of 2; it becomes object {self.expected}). Esc or "
                "'Cancel division' cancels.")


def revert_division(session, parent: int, daughters) -> None:
    """Take a division back out of ``session``: forget the daughters (their prompts, outputs
    and lineage) and reopen the parent's track. The parent's outputs removed by the division
    are not restored (propagate again to track it on)."""
    for oid in daughters:
        if oid in session.obj_ids:
            session.remove_object(oid)
    lineage = session.lineage
    if parent in lineage and not lineage.children(parent):
        lineage.end(parent, None)


def found_divisions(session, known) -> list[tuple[int, int, list[int]]]:
    """(parent, frame, daughters) of the divisions in ``session``'s lineage whose daughters
    are not among ``known`` (the objects before a propagation run: the run found them)."""
    lineage = getattr(session, "lineage", None)
    if lineage is None:
        return []
    return [(p, f, d) for p, f, d in lineage.divisions() if not set(d) & set(known)
            and p in lineage]


def revert_divisions(session, divided) -> None:
    """``revert_division`` for each (parent, frame, daughters) of ``divided``."""
    for parent, _, daughters in divided:
        revert_division(session, parent, daughters)


def division_pastes(data, ref: StackRef, parent: int, frame: int, result, daughters):
    """What a division writes into the labels ``data`` (the widget and a replay alike):
    ``[(plane key, obj_id, PlacedMask), ...]``: the parent's planes of the stack ``ref`` from
    ``frame`` on cleared (it ends on ``frame - 1``), then each daughter's mask from ``result``
    (the session's ``FrameResult`` of ``frame``)."""
    empty = PlacedMask.empty(data.shape[-2:])
    present = {_plane_id(key) for key in label_planes(data, parent)}
    keys = [ref.plane_key(f) for f in range(frame, data.shape[ref.stack_axis])]
    out = [(key, parent, empty) for key in keys if _plane_id(key) in present]
    return out + [(ref.plane_key(frame), oid, PlacedMask.from_result(result, oid))
                  for oid in daughters]


@dataclass
class Divider:
    """Runs a marked division as one job and writes it into the labels as one undo step."""

    jobs: JobQueue
    sessions: SessionStore
    writer: LabelsWriter
    feedback: Feedback

    def divide(self, image, labels, mark: DivisionMark,
               done: Callable[[bool], None] | None = None) -> None:
        """Queue the division ``mark`` (complete) of the stack on ``image``, writing into
        ``labels``; ``done(ok)`` after it was written (True) or refused (False)."""
        ref, frame, parent = mark.ref, mark.frame, mark.parent
        clicks = dict(zip(mark.daughters, mark.clicks))

        def job():
            session = self.sessions.get(image, ref)
            if parent not in session.obj_ids:
                raise ValueError(f"object {parent} is not tracked in this stack: click it (or "
                                 "use its painted mask) on an earlier frame first")
            masks = {}
            for oid, point in clicks.items():  # SAM's mask for a click on a new object
                masks[oid] = session.add_points(frame, oid, [point], [1]).mask_of(oid)
                session.remove_object(oid)
                if not masks[oid].any():
                    raise ValueError(f"SAM found nothing at the click for daughter {oid} on "
                                     f"frame {frame}: click inside the daughter cell")
            result = session.divide(frame, parent, masks)
            self.sessions.recorder.add(session, DivideStep(frame, parent, masks))
            return result

        def failed(exc: BaseException) -> None:
            self.feedback.failed(f"dividing object {parent} on frame {frame}")(exc)
            if done is not None:
                done(False)

        def written(result) -> None:
            self._write(image, labels, mark, result)
            if done is not None:
                done(True)

        self.feedback.busy(True)
        self.jobs.submit(job, returned=written, errored=failed)

    def _write(self, image, target, mark: DivisionMark, result) -> None:
        if not self.feedback.exists(target):
            self.feedback.error(f"the Labels layer '{target.name}' was removed: the division of "
                                f"object {mark.parent} was not written")
            return
        parent, frame, ref = mark.parent, mark.frame, mark.ref

        def undone():
            session = self.sessions.get(image, ref, create=False)
            if session is not None:
                revert_division(session, parent, mark.daughters)

        group = UndoGroup(f"divide object {parent} on frame {frame} into "
                          f"{mark.daughters[0]} and {mark.daughters[1]}", target=target,
                          undone=undone)
        for key, oid, mask in division_pastes(labels_array(target), ref, parent, frame, result,
                                              mark.daughters):
            self.writer.paste(group, key, oid, mask)
        self.writer.undo_stack.push(group)
        target.refresh()
        self.feedback.written()
        sizes = ", ".join(f"{oid}: {int(result.mask_of(oid).sum())} pixels"
                          for oid in mark.daughters)
        self.feedback.say(f"object {parent} divided on frame {frame} into {sizes}; its track "
                          f"ends on frame {frame - 1}. Propagate to track the daughters.")
        self.feedback.objects_changed()
