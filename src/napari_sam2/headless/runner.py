"""Replay a session record on an image stack and stream the labels to disk (``track``).

One code path for every source of prompts (a saved record, a CSV, seed labels: all are
``SessionRecord``s). The steps run in order on a ``TrackingSession``; their masks go into an
OME-Zarr label store through the widget's own paste rules
(``_napari._replay.replay_labels``, then ``labels.StreamPainter``). The last step, when it is a
propagation, is *streamed*: each frame's plane is written as soon as it is
computed, the outputs no later frame can read are dropped (``engine.kept_outputs``), and a
small resume journal keeps the outputs of the last frames. Memory stays flat however long the
stack is; a killed run leaves every finished plane on disk.

Resume (``resume=True``, same record, image and settings): the steps before the last
propagation are replayed again (their labels are rebuilt in a scratch store beside the output,
which is deleted afterwards, so frames the propagation has not reached yet start from the same
labels); the propagation then goes on after the last frame in the journal, with the tracked
outputs it needs restored from it. The result equals an uninterrupted run. A run
killed before its last propagation started, or whose last propagation has
``stop_after_absent`` (its per-object counters are not journalled), starts over.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from napari_sam2.engine.kept_outputs import (
    forget_tracked,
    lookback,
    restore_tracked,
    tracked_output,
)
from napari_sam2._napari._layers import LabelsWriter
from napari_sam2._napari._replay import replay_labels
from napari_sam2.engine.passes import pass_spans
from napari_sam2.engine.session_record import PropagateStep, SessionRecord, records_document
from napari_sam2.headless.journal import Journal
from napari_sam2.headless.labels import OUTPUT_REF, PlaneStore, StreamPainter
from napari_sam2.io._zarr_store import labels_target
from napari_sam2.io.label_stream import LabelStream

__all__ = ["TrackOutput", "run_key", "track"]


@dataclasses.dataclass
class TrackOutput:
    """Where and how the labels are written: ``path`` (a ``.zarr`` folder, or an OME-Zarr
    image: ``path/labels/<name>``), the layer ``name``, and the attributes of the (T, H, W)
    label image."""

    path: Path
    name: str = "labels"
    axis_labels: tuple = ("t", "y", "x")
    scale: tuple | None = None
    translate: tuple | None = None
    provenance: dict = dataclasses.field(default_factory=dict)

    @property
    def target(self) -> Path:
        return labels_target(self.path, self.name)


def run_key(record: SessionRecord, frames_shape, image: str = "") -> str:
    """What a run computes (the record's JSON, the stack's shape, a description of the image
    such as its dtype), as a hash: a resumed run goes on only into an output with the same
    key."""
    text = json.dumps([record.to_dict(), list(frames_shape), str(image)], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _tail_of(record: SessionRecord) -> tuple[SessionRecord, PropagateStep | None]:
    """(the steps before the streamed propagation, that propagation or None). A propagation
    that finds divisions (frames come again) is not streamed: it is replayed with the rest."""
    last = record.steps[-1] if record.steps else None
    if isinstance(last, PropagateStep) and last.divisions is None:
        return dataclasses.replace(record, steps=record.steps[:-1]), record.steps[-1]
    return record, None


def _passes(session, step: PropagateStep) -> tuple[int, int, int, list[list[int]]]:
    """(start, first, last, [frame order of each pass]) of the streamed propagation, as
    ``engine.passes.propagate_passes`` runs it (before an early stop or a limit)."""
    start = step.start
    if start is None:
        ids = session.obj_ids if step.obj_ids is None else step.obj_ids
        start = min(session.conditioning_frames(o)[0] for o in ids)
    first = 0 if step.first is None else int(step.first)
    last = session.num_frames - 1 if step.last is None else int(step.last)
    orders = []
    for reverse, span in pass_spans(int(start), first, last, step.direction, step.max_frames):
        if reverse:
            order = [] if start == 0 else list(range(start, max(start - span, 0) - 1, -1))
        else:
            order = list(range(start, min(start + span, session.num_frames - 1) + 1))
        orders.append([f for f in order if first <= f <= last])
    return int(start), first, last, orders


def track(record: SessionRecord, session, output: TrackOutput, *, resume: bool = False,
          image: str = "",
          progress: Callable[[int, int], None] | None = None,
          say: Callable[[str], None] = lambda text: None) -> dict:
    """Replay ``record`` on ``session`` (a fresh ``TrackingSession`` over the stack) and write
    the labels to ``output``.

    Args:
        record: the steps (any source of prompts, see ``headless.prompts``).
        session: a fresh session over the (T, H, W[, 3]) frames the record was made on.
        output: where the (T, H, W) labels go.
        image: describes the image (e.g. its dtype and path), part of the run's key.
        resume: go on with an unfinished run of the same record into the same output (see
            the module docstring); False replaces an earlier output napari-sam2 wrote.
        progress: ``progress(done, total)`` after each streamed frame.
        say: one-line messages (what is resumed, what is skipped).

    Returns:
        {"output": path written, "frames": frames streamed now (of a last propagation that
        finds divisions: replayed, frames that came again included), "resumed_at": frame or None,
        "skipped": True when the output was already complete}.

    Raises:
        RefusedOverwriteError: the output holds something napari-sam2 did not write, or (with
            ``resume``) an unfinished run of other prompts or settings.
    """
    n, h, w = session.num_frames, *session.frame_shape
    key = run_key(record, (n, h, w), image)
    head, tail = _tail_of(record)
    target = output.target
    journal = Journal(target)
    stream = None
    if resume and target.exists():
        stream = LabelStream.reopen(output.path, key=key, name=output.name)
        if stream.complete:
            journal.remove()  # killed between the last frame and the clean-up
            say(f"{target} is complete: nothing to do")
            return {"output": str(target), "frames": 0, "resumed_at": None, "skipped": True}
    entries = journal.entries() if stream is not None and journal.key() == key else set()
    if tail is not None and tail.stop_after_absent is not None:
        entries = set()  # its per-object counters are not journalled
    if stream is not None and not entries:
        if tail is None and record.steps and isinstance(record.steps[-1], PropagateStep):
            say("starting over: a propagation that finds divisions cannot go on from a frame")
        elif tail is None or tail.stop_after_absent is None:
            say("starting over: the last propagation had not started")
        else:
            say("starting over: a propagation with --stop-after-absent cannot go on from a "
                "frame")
        stream = None
    if stream is None:
        stream = LabelStream.create(
            output.path, (n, h, w), key=key, name=output.name,
            axis_labels=output.axis_labels, scale=output.scale, translate=output.translate,
            provenance={**output.provenance, "session_records": records_document([record])})
    if not entries:
        journal.start(key)

    for stale in target.parent.glob(f".{target.name}.scratch-*"):  # from a killed resume
        shutil.rmtree(stale, ignore_errors=True)
    scratch_dir = None
    try:
        if entries:  # the head's labels, rebuilt where the propagation has not been yet
            scratch_dir = Path(tempfile.mkdtemp(prefix=f".{target.name}.scratch-",
                                                dir=target.parent))
            scratch = LabelStream.create(scratch_dir / "labels.zarr", (n, h, w), key=key)
            head_data = PlaneStore(scratch)
        else:
            scratch, head_data = None, PlaneStore(stream)
        writer = LabelsWriter()
        last = len(head.steps) - 1  # a last run that finds divisions is replayed, not streamed
        replayed = []
        replay_labels(head, session, head_data, ref=OUTPUT_REF, writer=writer,
                      on_frame=lambda i, _: replayed.append(i) if i == last else None)
        head_data.flush()
        frames = len(replayed) if tail is None and isinstance(
            head.steps[last] if head.steps else None, PropagateStep) else 0
        resumed_at = None
        if tail is not None:
            painter = next(iter(writer.painters.values()), None)  # the head's only target
            frames, resumed_at = _stream_tail(session, record, tail, stream, head_data, writer,
                                              painter, journal, entries, scratch, progress, say)
        stream.finish(frames_total=n)
        journal.remove()
        return {"output": str(target), "frames": frames, "resumed_at": resumed_at,
                "skipped": False}
    finally:
        if scratch_dir is not None:
            shutil.rmtree(scratch_dir, ignore_errors=True)


def _stream_tail(session, record, step, stream, data, writer, painter, journal, entries,
                 scratch, progress, say) -> tuple[int, int | None]:
    start, first, last, orders = _passes(session, step)
    tail_index = len(record.steps) - 1
    K = lookback(session.model.config)

    def keep(frame: int, current: int) -> bool:
        return abs(frame - current) <= K or abs(frame - start) <= K

    reverses = [rev for rev, _ in pass_spans(start, first, last, step.direction,
                                             step.max_frames)]
    # where to go on: after the last journalled frame of the last pass in the journal
    resume_pass, resume_pos = 0, 0
    if entries:
        p = max(q for q, _ in entries)
        pos = {f: i for i, f in enumerate(orders[p])}
        last_done = max(pos[f] for q, f in entries if q == p and f in pos)
        resume_pass, resume_pos = p, last_done + 1
        if resume_pos >= len(orders[p]):
            resume_pass, resume_pos = p + 1, 0
        for q, f in sorted(entries, key=lambda e: (e[0], orders[e[0]].index(e[1])
                                                   if e[1] in orders[e[0]] else -1)):
            restore_tracked(session, f, journal.get(q, f), reverse=reverses[q])
    done_frames = {f for q in range(resume_pass) for f in orders[q]} | set(
        orders[resume_pass][:resume_pos] if resume_pass < len(orders) else [])
    if scratch is not None:  # frames the propagation has not written read the head's labels
        all_frames = {f for order in orders for f in order}
        data = PlaneStore(stream, source=scratch, source_frames=all_frames - done_frames)
    labels = StreamPainter(writer, data, painter)
    total = sum(len(o) for o in orders)
    if step.frames_done is not None:
        total = min(total, int(step.frames_done))
    done = sum(len(o) for o in orders[:resume_pass]) + resume_pos
    resumed_at = None
    if entries and resume_pass < len(orders):
        resumed_at = orders[resume_pass][resume_pos] if resume_pos < len(
            orders[resume_pass]) else None
        say(f"resuming the propagation at frame {resumed_at} ({done} of {total} frames were "
            "done)")
    streamed = 0
    for p in range(resume_pass, len(orders)):
        order = orders[p][resume_pos if p == resume_pass else 0:]
        if not order or done >= total:
            continue
        begin = order[0]
        span = abs(orders[p][-1] - begin)
        forget_tracked(session, lambda f: keep(f, begin))
        results = session.propagate(begin, reverse=reverses[p], max_frames=span,
                                    obj_ids=step.obj_ids,
                                    stop_after_absent=step.stop_after_absent)
        try:
            for result in results:
                if not first <= result.frame <= last:
                    break
                labels.paste(result, record.writes(tail_index, result))
                data.flush()
                journal.put(p, result.frame, tracked_output(session, result.frame))
                forget_tracked(session, lambda f, g=result.frame: keep(f, g))
                for q, f in journal.entries():
                    if not keep(f, result.frame):
                        journal.drop(q, f)
                done += 1
                streamed += 1
                if progress is not None:
                    progress(done, total)
                if done >= total:
                    break
        finally:
            results.close()
    return streamed, resumed_at
