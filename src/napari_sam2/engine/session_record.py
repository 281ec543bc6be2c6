"""A session record: every action that changed a ``TrackingSession``, in order, as JSON.

The widget appends one step per action (a click, a box, a painted mask used as prompt, a
cleared frame, a removed object, a propagation with its options, a division marked by hand, a
contrast change, an undo);
the writers save the record with the labels, and ``SessionRecord.replay`` runs the same steps on
a fresh session over the same image, which reproduces the widget's results exactly on the same
machine and device (same model, prompts and order). Format and meaning: ``docs/sessions.md``.

Frames are indices along the stack axis; coordinates are (row, col) in the frame's pixels, as
everywhere in the engine. Stdlib and numpy only (the session passed to ``replay`` brings torch).

    record = SessionRecord(model="sam2_demo", image_shape=(16, 192, 256), stack_axis=0)
    record.append(PointsStep(0, 1, ((40.0, 60.0),), (1,)))
    record.append(PropagateStep(start=0, direction="both"))
    text = record.to_json()
    for index, result in SessionRecord.from_json(text).replay(session):
        ...                                   # result: FrameResult of a prompt or a frame
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace

import numpy as np

from napari_sam2.engine.passes import check_direction, propagate_passes
from napari_sam2.engine.types import FrameResult
from napari_sam2.errors import DamagedFileError

#: what ``to_json`` writes under "format" (a file without it is not a session record)
FORMAT = "napari-sam2 session record"
#: the format version written; ``from_json`` reads this one only
VERSION = 1


# ---------------------------------------------------------------------- masks as run lengths
def mask_to_rle(mask: np.ndarray) -> dict:
    """(H, W) bool -> {"shape": [H, W], "runs": [n0, n1, ...]}: run lengths of the row-major
    pixels, alternating False and True and starting with False (n0 may be 0)."""
    m = np.asarray(mask, bool)
    if m.ndim != 2:
        raise ValueError(f"a mask must be 2-D (H, W), got shape {m.shape}")
    flat = m.ravel()
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], edges, [flat.size]))
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        runs = [0, *runs]
    return {"shape": [int(s) for s in m.shape], "runs": [int(r) for r in runs]}


def mask_from_rle(rle: dict) -> np.ndarray:
    """The inverse of ``mask_to_rle``; ValueError when the runs do not fill the shape."""
    shape = tuple(int(s) for s in rle["shape"])
    runs = np.asarray(rle["runs"], np.int64)
    if len(shape) != 2 or min(shape) < 0 or (runs < 0).any():
        raise ValueError(f"bad run-length mask: shape {shape}, runs must be >= 0")
    if int(runs.sum()) != shape[0] * shape[1]:
        raise ValueError(f"bad run-length mask: runs sum to {int(runs.sum())}, "
                         f"the shape {shape} has {shape[0] * shape[1]} pixels")
    values = np.arange(len(runs)) % 2 == 1
    return np.repeat(values, runs).reshape(shape)


# ---------------------------------------------------------------------- steps
def _pair(p) -> tuple[float, float]:
    r, c = (float(v) for v in p)
    return (r, c)


@dataclass(frozen=True)
class PointsStep:
    """Clicks for one object on one frame (``TrackingSession.add_points``): ``points``
    ((row, col), ...), ``labels`` (1 object, 0 background); ``clear`` replaces the frame's
    earlier points of the object (the widget always sends all of them with ``clear``)."""

    frame: int
    obj_id: int
    points: tuple
    labels: tuple
    clear: bool = True

    def __post_init__(self):
        object.__setattr__(self, "points", tuple(_pair(p) for p in self.points))
        object.__setattr__(self, "labels", tuple(int(v) for v in self.labels))


@dataclass(frozen=True)
class BoxStep:
    """A box (row0, col0, row1, col1), optionally with clicks (``add_box``)."""

    frame: int
    obj_id: int
    box: tuple
    points: tuple = ()
    labels: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "box", tuple(float(v) for v in self.box))
        object.__setattr__(self, "points", tuple(_pair(p) for p in self.points))
        object.__setattr__(self, "labels", tuple(int(v) for v in self.labels))


@dataclass(frozen=True, eq=False)
class MaskStep:
    """A mask (H, W) bool used as the object's prompt on a frame (``add_mask``): a painted
    mask, or one object of "Track all labels here"."""

    frame: int
    obj_id: int
    mask: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "mask", np.asarray(self.mask, bool))

    def __eq__(self, other):
        return (isinstance(other, MaskStep) and (self.frame, self.obj_id) ==
                (other.frame, other.obj_id) and np.array_equal(self.mask, other.mask))

    __hash__ = None


@dataclass(frozen=True)
class ClearStep:
    """The prompts of one object (or, ``obj_id`` None, of all) on a frame removed
    (``clear_frame``); the widget then writes an empty mask for that object there."""

    frame: int
    obj_id: int | None = None


@dataclass(frozen=True)
class RemoveStep:
    """An object forgotten (``remove_object``); the widget also erases its pixels.
    ``together``: removed in the same action as the step before (the widget deletes the
    selected objects as one undoable step)."""

    obj_id: int
    together: bool = False


@dataclass(frozen=True)
class PropagateStep:
    """One propagation run (``engine.passes.propagate_passes``).

    Attributes:
        start: the frame it starts from (None: the earliest conditioning frame).
        direction: "forward", "backward" or "both" (forward, then backward from ``start``).
        max_frames: frames beyond ``start`` per pass (None: to the range's end).
        obj_ids: the objects tracked (None: all of the session's).
        stop_after_absent: N frames in a row without an object stop it (None: never).
        first, last: the frame range that may be written (None: the whole stack).
        frames_done: frames the run yielded before it was cancelled (None: it ran to its end).
        divisions: the fields of the ``engine.division.DivisionRule`` that found cell divisions
            in the forward pass (None: none); a ``DivisionRule`` is taken too. After a
            division frames come again with the daughters (see ``PropagationWrites``).
    """

    start: int | None = None
    direction: str = "forward"
    max_frames: int | None = None
    obj_ids: tuple | None = None
    stop_after_absent: int | None = None
    first: int | None = None
    last: int | None = None
    frames_done: int | None = None
    divisions: dict | None = field(default=None, hash=False)

    def __post_init__(self):
        check_direction(self.direction)
        if self.obj_ids is not None:
            object.__setattr__(self, "obj_ids", tuple(int(o) for o in self.obj_ids))
        if self.divisions is not None:  # checked (and completed) by the rule itself
            from dataclasses import asdict, is_dataclass

            rule = self.divisions
            if not is_dataclass(rule):
                if not isinstance(rule, dict):
                    raise TypeError(f"divisions must be a DivisionRule's fields or None, got "
                                    f"{rule!r}")
                from napari_sam2.engine.division import DivisionRule

                rule = DivisionRule(**rule)
            object.__setattr__(self, "divisions", asdict(rule))

    @property
    def division_rule(self):
        """The ``engine.division.DivisionRule`` of ``divisions`` (None: no divisions)."""
        if self.divisions is None:
            return None
        from napari_sam2.engine.division import DivisionRule

        return DivisionRule(**self.divisions)


@dataclass(frozen=True, eq=False)
class DivideStep:
    """A division marked by hand (``TrackingSession.divide``): ``parent_id`` ends on
    ``frame - 1``; ``daughters`` ((obj_id, (H, W) bool mask), ...) are new objects with those
    masks as prompts on ``frame``. The widget also clears the parent's pixels on ``frame`` and
    later of the stack; undoing it takes the division back out of the session."""

    frame: int
    parent_id: int
    daughters: tuple

    def __post_init__(self):
        items = self.daughters.items() if isinstance(self.daughters, dict) else self.daughters
        object.__setattr__(self, "daughters",
                           tuple((int(o), np.asarray(m, bool)) for o, m in items))

    @property
    def daughter_ids(self) -> tuple[int, ...]:
        return tuple(o for o, _ in self.daughters)

    def __eq__(self, other):
        return (isinstance(other, DivideStep) and (self.frame, self.parent_id) ==
                (other.frame, other.parent_id) and self.daughter_ids == other.daughter_ids
                and all(np.array_equal(a, b) for (_, a), (_, b) in
                        zip(self.daughters, other.daughters)))

    __hash__ = None


@dataclass(frozen=True)
class IntensityStep:
    """The intensity window (contrast limits) changed (``set_intensity_range``); None: per
    frame, as the session's default."""

    intensity_range: tuple | None

    def __post_init__(self):
        if self.intensity_range is not None:
            object.__setattr__(self, "intensity_range",
                               tuple(float(v) for v in self.intensity_range))


@dataclass(frozen=True)
class UndoStep:
    """The widget's Undo: reverts the last write of SAM into the labels. It changes the
    labels, not the session (replay yields nothing for it)."""


@dataclass(frozen=True)
class OverwriteStep:
    """The widget's "overwrite other labels" setting changed (labels only, like Undo)."""

    overwrite: bool


#: JSON "type" of each step class
STEP_TYPES: dict[str, type] = {
    "points": PointsStep, "box": BoxStep, "mask": MaskStep, "clear": ClearStep,
    "remove": RemoveStep, "propagate": PropagateStep, "intensity": IntensityStep,
    "undo": UndoStep, "overwrite": OverwriteStep, "divide": DivideStep,
}
_TYPE_OF = {cls: name for name, cls in STEP_TYPES.items()}


def step_to_dict(step) -> dict:
    """One step as plain JSON values, with its "type"."""
    name = _TYPE_OF.get(type(step))
    if name is None:
        raise TypeError(f"not a session record step: {step!r}")
    out: dict = {"type": name}
    for f in fields(step):
        value = getattr(step, f.name)
        if isinstance(value, np.ndarray):
            value = mask_to_rle(value)
        elif isinstance(step, DivideStep) and f.name == "daughters":
            value = [[o, mask_to_rle(m)] for o, m in value]
        elif isinstance(value, tuple):
            value = [list(v) if isinstance(v, tuple) else v for v in value]
        out[f.name] = value
    return out


def step_from_dict(data: dict):
    """The inverse of ``step_to_dict``; ValueError/TypeError/KeyError on a bad step."""
    if not isinstance(data, dict):
        raise TypeError(f"a step must be a JSON object, got {type(data).__name__}")
    kind = data.get("type")
    cls = STEP_TYPES.get(kind)
    if cls is None:
        raise ValueError(f"unknown step type {kind!r} (known: {', '.join(STEP_TYPES)})")
    known = {f.name for f in fields(cls)}
    extra = set(data) - known - {"type"}
    if extra:
        raise ValueError(f"{kind} step has unknown fields {sorted(extra)}")
    kwargs = {k: v for k, v in data.items() if k != "type"}
    if cls is MaskStep:
        kwargs["mask"] = mask_from_rle(kwargs["mask"])
    if cls is DivideStep:
        kwargs["daughters"] = [(o, mask_from_rle(m)) for o, m in kwargs["daughters"]]
        for o, _ in kwargs["daughters"]:
            if isinstance(o, bool) or not isinstance(o, int):
                raise TypeError(f"divide step: a daughter's id must be an integer, got {o!r}")
    for name in ("frame", "obj_id", "parent_id", "start", "max_frames", "stop_after_absent",
                 "first", "last", "frames_done"):
        if name in kwargs and kwargs[name] is not None:
            value = kwargs[name]
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{kind} step: {name} must be an integer, got {value!r}")
    return cls(**kwargs)


# ---------------------------------------------------------------------- the record
@dataclass
class SessionRecord:
    """What made one stack's labels: the image geometry, the model and the steps in order.

    Attributes:
        steps: the steps, oldest first.
        model: model name (e.g. "sam2.1_hiera_tiny", "sam2_demo"; "custom" when unknown).
        checkpoint_sha256: sha256 of the checkpoint file, None when unknown.
        image_shape: the image's non-channel shape (e.g. (T, H, W) or (T, Z, H, W)).
        stack_axis: the axis frames run along (None: a 2-D image, one frame).
        other_axes: {axis: index} of the non-spatial axes held fixed (e.g. the time point of
            a z-stack in a (T, Z, H, W) image).
        intensity_range: (lo, hi) the session started with (contrast limits), None: per frame.
        scale, translate: the image layer's, per non-channel axis (to place labels again).
        software_version: napari-sam2's version that recorded it.
        bfloat16: the session's bfloat16 setting (None: automatic, see ``engine/device.py``).
        device: the device the session ran on (for information: replay picks its own).
        rgb: whether the image has a trailing colour axis.
        image_name: the image layer's name (for information).
        window: the session's window (issue 19): None for whole frames, "auto", or a side in
            pixels; replay builds its session with the same.
    """

    steps: list = field(default_factory=list)
    model: str = "custom"
    checkpoint_sha256: str | None = None
    image_shape: tuple = ()
    stack_axis: int | None = 0
    other_axes: dict = field(default_factory=dict)
    intensity_range: tuple | None = None
    scale: tuple | None = None
    translate: tuple | None = None
    software_version: str = ""
    bfloat16: bool | None = None
    device: str = ""
    rgb: bool = False
    image_name: str = ""
    window: int | str | None = None

    def __post_init__(self):
        self.steps = list(self.steps)
        self.image_shape = tuple(int(s) for s in self.image_shape)
        self.other_axes = {int(k): int(v) for k, v in dict(self.other_axes).items()}
        for name in ("intensity_range", "scale", "translate"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, tuple(float(v) for v in value))
        if not self.software_version:
            from napari_sam2 import __version__

            self.software_version = __version__

    def append(self, step) -> None:
        """Add ``step`` at the end (TypeError for anything that is not a step)."""
        if type(step) not in _TYPE_OF:
            raise TypeError(f"not a session record step: {step!r}")
        self.steps.append(step)

    @property
    def obj_ids(self) -> list[int]:
        """The objects the steps leave in the session, sorted (daughters found by a
        propagation with ``divisions`` are known only once it ran)."""
        alive: set[int] = set()
        for step in self.steps:
            if isinstance(step, (PointsStep, BoxStep, MaskStep)):
                alive.add(step.obj_id)
            elif isinstance(step, DivideStep):
                alive.update(step.daughter_ids)
            elif isinstance(step, RemoveStep):
                alive.discard(step.obj_id)
        return sorted(alive)

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        """The record as plain JSON values (what ``to_json`` writes)."""
        return {
            "format": FORMAT, "version": VERSION,
            "model": self.model, "checkpoint_sha256": self.checkpoint_sha256,
            "image_shape": list(self.image_shape), "stack_axis": self.stack_axis,
            "other_axes": {str(k): v for k, v in sorted(self.other_axes.items())},
            "intensity_range": _list(self.intensity_range), "scale": _list(self.scale),
            "translate": _list(self.translate), "software_version": self.software_version,
            "bfloat16": self.bfloat16, "device": self.device, "rgb": self.rgb,
            "image_name": self.image_name, "window": self.window,
            "steps": [step_to_dict(s) for s in self.steps],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data, *, source: str = "") -> SessionRecord:
        """A record from ``to_dict``'s values; ``DamagedFileError`` naming ``source`` when it
        is not a session record of a version this package reads, or a step is bad."""
        where = f" in {source}" if source else ""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DamagedFileError(f"no napari-sam2 session record{where}: expected a JSON "
                                   f"object with \"format\": \"{FORMAT}\"")
        if data.get("version") != VERSION:
            raise DamagedFileError(
                f"the session record{where} has version {data.get('version')!r}, this "
                f"napari-sam2 reads version {VERSION}: open it with the version that wrote it "
                f"({data.get('software_version', 'unknown')}) or a newer one")
        steps = []
        for i, step in enumerate(data.get("steps", [])):
            try:
                steps.append(step_from_dict(step))
            except (ValueError, TypeError, KeyError) as exc:
                raise DamagedFileError(f"the session record{where} has a bad step {i}: {exc}; "
                                       "the file is damaged or was edited by hand") from exc
        known = {f.name for f in fields(cls)} - {"steps"}
        kwargs = {k: v for k, v in data.items() if k in known}
        try:
            return cls(steps=steps, **kwargs)
        except (ValueError, TypeError) as exc:
            raise DamagedFileError(f"the session record{where} is damaged: {exc}") from exc

    @classmethod
    def from_json(cls, text, *, source: str = "") -> SessionRecord:
        """Parse ``to_json``'s text (or a ``dump_records`` document holding exactly one record);
        ``DamagedFileError`` naming ``source`` on bad JSON, an unknown version or a bad step."""
        records = load_records(text, source=source)
        if len(records) != 1:
            where = f" in {source}" if source else ""
            raise DamagedFileError(f"{len(records)} session records{where} (one per stack): "
                                   "use load_records and pick one by its other_axes")
        return records[0]

    # ------------------------------------------------------------------ replay
    def replay(self, session) -> Iterator[tuple[int, FrameResult]]:
        """Run every step in order on ``session`` (a fresh ``TrackingSession`` over the same
        stack); yields ``(step index, result)`` for each prompt (points, box, mask), division
        and each propagated frame. Clear, remove and intensity steps change the session and
        yield nothing; undo and overwrite steps concern the labels and are skipped (an undo
        that took back a division also changes the session: ``_napari._replay.replay_labels``,
        which keeps the undo stack, does that)."""
        for index in range(len(self.steps)):
            for result in self.run_step(session, index):
                yield index, result

    def run_step(self, session, index: int) -> Iterator[FrameResult]:
        """Run step ``index`` on ``session``; yields its results (one for a prompt, one per
        frame for a propagation, none for the others). Lazy: nothing runs until iterated."""
        step = self.steps[index]
        if isinstance(step, PointsStep):
            yield session.add_points(step.frame, step.obj_id, step.points, step.labels,
                                     clear=step.clear)
        elif isinstance(step, BoxStep):
            some = len(step.points) > 0
            yield session.add_box(step.frame, step.obj_id, step.box,
                                  points=step.points if some else None,
                                  labels=step.labels if some else None)
        elif isinstance(step, MaskStep):
            yield session.add_mask(step.frame, step.obj_id, step.mask, others=False)
        elif isinstance(step, ClearStep):
            session.clear_frame(step.frame, step.obj_id)
        elif isinstance(step, RemoveStep):
            if step.obj_id in session.obj_ids:
                session.remove_object(step.obj_id)
        elif isinstance(step, IntensityStep):
            session.set_intensity_range(step.intensity_range)
        elif isinstance(step, PropagateStep):
            yield from run_propagate_step(session, step)
        elif isinstance(step, DivideStep):
            yield session.divide(step.frame, step.parent_id, dict(step.daughters))

    def prompts(self) -> dict:
        """The prompts the steps leave in place: {(frame, obj_id): the PointsStep, BoxStep or
        MaskStep that set them} (points added with ``clear=False`` are merged into one
        ``PointsStep``), in the order they were given."""
        out: dict = {}
        for step in self.steps:
            if isinstance(step, PointsStep) and not step.clear:
                old = out.pop((step.frame, step.obj_id), None)
                if isinstance(old, (PointsStep, BoxStep)):
                    step = replace(old, points=old.points + step.points,
                                   labels=old.labels + step.labels)
                out[(step.frame, step.obj_id)] = step
            elif isinstance(step, (PointsStep, BoxStep, MaskStep)):
                out.pop((step.frame, step.obj_id), None)
                out[(step.frame, step.obj_id)] = step
            elif isinstance(step, ClearStep):
                for key in [k for k in out if k[0] == step.frame
                            and step.obj_id in (None, k[1])]:
                    del out[key]
            elif isinstance(step, RemoveStep):
                for key in [k for k in out if k[1] == step.obj_id]:
                    del out[key]
            elif isinstance(step, DivideStep):  # the parent's prompts from frame on go
                for key in [k for k in out if k[1] == step.parent_id and k[0] >= step.frame]:
                    del out[key]
                for oid, mask in step.daughters:
                    out[(step.frame, oid)] = MaskStep(step.frame, oid, mask)
        return out

    def writes(self, index: int, result: FrameResult,
               mask_of=None) -> list[tuple[int, np.ndarray]]:
        """What the widget pastes into the labels for ``result`` of step ``index``:
        ``[(obj_id, (H, W) bool mask), ...]`` (a mask prompt pastes nothing: the painted mask
        is already there; a division its daughters, the widget also clears the parent's
        pixels on that frame and later, see ``_napari._division.division_pastes``). A
        propagation with ``divisions`` yields frames again after a division: paste its
        results with ``PropagationWrites``, which knows the frames written before.
        ``mask_of``: as ``PropagationWrites``' (default: (H, W) bool masks)."""
        mask_of = _frame_mask if mask_of is None else mask_of
        step = self.steps[index]
        if isinstance(step, (PointsStep, BoxStep)):
            present = step.obj_id in result.obj_ids
            return [(step.obj_id, mask_of(result, step.obj_id if present else None))]
        if isinstance(step, PropagateStep):
            return PropagationWrites(step.obj_ids, known=result.obj_ids,
                                     mask_of=mask_of)(result)[0]
        if isinstance(step, DivideStep):
            return [(o, mask_of(result, o)) for o in step.daughter_ids]
        return []


class PropagationWrites:
    """What the widget pastes for each result of one propagation run, in order.

    Written are the run's objects (``obj_ids``; None: all) and the objects that were not in
    the session when the run started (``known``): daughters of a division found during the
    run. A frame that comes again after a division (not ``start``, which each pass yields
    once) first clears the objects written there before that are not in the result now (the
    parent, which has ended), so that the daughters may take their pixels.

        writes = PropagationWrites(step.obj_ids, known=session.obj_ids, start=start)
        for result in run:
            pastes, again = writes(result)   # [(obj_id, (H, W) bool)], a frame seen before

    ``mask_of(result, obj_id)`` gives what is pasted for an object (default
    ``result.mask_of``: (H, W) bool) and ``mask_of(result, None)`` what clears one (default
    an all-False (H, W) array); the plugin passes crops with their place for huge frames.
    """

    def __init__(self, obj_ids=None, *, known=(), start: int | None = None, mask_of=None):
        self.obj_ids = None if not obj_ids else frozenset(int(o) for o in obj_ids)
        self.known = frozenset(int(o) for o in known)
        self.start = start
        self.written: dict[int, set[int]] = {}  # frame -> objects written there
        self.mask_of = _frame_mask if mask_of is None else mask_of

    def __call__(self, result: FrameResult) -> tuple[list[tuple[int, np.ndarray]], bool]:
        wanted = [o for o in result.obj_ids
                  if self.obj_ids is None or o in self.obj_ids or o not in self.known]
        again = result.frame in self.written and result.frame != self.start
        pastes: list[tuple[int, np.ndarray]] = []
        if again:
            empty = self.mask_of(result, None)
            pastes = [(o, empty) for o in sorted(self.written[result.frame] - set(wanted))]
        pastes += [(o, self.mask_of(result, o)) for o in wanted]
        self.written[result.frame] = set(wanted)
        return pastes, again


def _frame_mask(result: FrameResult, obj_id: int | None) -> np.ndarray:
    """``obj_id``'s (H, W) bool mask in ``result`` (None: an empty one)."""
    if obj_id is not None:
        return result.mask_of(obj_id)
    return np.zeros(result.frame_shape or result.logits.shape[-2:], bool)


def propagate_start(session, step: PropagateStep) -> int:
    """The frame ``step`` starts from on ``session`` (its ``start``, or the earliest
    conditioning frame of its objects)."""
    if step.start is not None:
        return int(step.start)
    ids = session.obj_ids if step.obj_ids is None else step.obj_ids
    return min(session.conditioning_frames(o)[0] for o in ids)


def run_propagate_step(session, step: PropagateStep, stop=None) -> Iterator[FrameResult]:
    """The frames of one ``PropagateStep`` on ``session`` (the widget's run, replayed)."""
    start = propagate_start(session, step)
    first = 0 if step.first is None else step.first
    return propagate_passes(
        session, start, direction=step.direction, first=first, last=step.last,
        max_frames=step.max_frames, obj_ids=step.obj_ids,
        stop_after_absent=step.stop_after_absent, stop=stop, limit=step.frames_done,
        divisions=step.division_rule)


def _list(values):
    return None if values is None else list(values)


# ---------------------------------------------------------------------- several stacks
def dump_records(records) -> str:
    """Several records (one per stack of an image, e.g. z-stacks at several time points) as
    one JSON document: {"format": ..., "version": ..., "records": [...]}."""
    return json.dumps(records_document(records), separators=(",", ":"))


def records_document(records) -> dict:
    """``dump_records``' document as plain values (what the writers store with the labels)."""
    return {"format": FORMAT, "version": VERSION, "records": [r.to_dict() for r in records]}


def load_records(data, *, source: str = "") -> list[SessionRecord]:
    """Records from JSON text, or its parsed value: one record or a ``dump_records`` document.
    ``DamagedFileError`` naming ``source`` when it is neither."""
    where = f" in {source}" if source else ""
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise DamagedFileError(f"the session record{where} is not valid JSON ({exc}): the "
                                   "file is damaged; save the labels again") from exc
    if isinstance(data, dict) and "records" in data:
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise DamagedFileError(
                f"the session records{where} have format {data.get('format')!r} version "
                f"{data.get('version')!r}; this napari-sam2 reads \"{FORMAT}\" version {VERSION}")
        items = data["records"]
        if not isinstance(items, list):
            raise DamagedFileError(f"the session records{where} are not a list")
        return [SessionRecord.from_dict(r, source=source) for r in items]
    return [SessionRecord.from_dict(data, source=source)]
