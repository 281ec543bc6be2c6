"""Axis names, scale and translation of a labels array: validation shared by the writers.

A labels array has 2 to 5 dimensions, the last two are (y, x). NGFF 0.5 wants axis names with a
type ("time", "channel", "space") and the order time, channel, space. napari layers carry their
own ``axis_labels`` (often ``("0", "1", "2")``); those are kept verbatim in our provenance
record, and mapped here to valid NGFF names.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from napari_sam2._safe_write import json_text

# default NGFF axis names for a labels array of 2..5 dims when the layer's names are not usable
_DEFAULT_AXES = {
    2: ("y", "x"),
    3: ("z", "y", "x"),
    4: ("t", "z", "y", "x"),
    5: ("t", "c", "z", "y", "x"),
}
_AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
_ORDER = {"time": 0, "channel": 1, "space": 2}


@dataclass
class LabelsMeta:
    """What the writers store beside the label values (and the readers give back).

    Attributes:
        axes: NGFF axis names, one per dimension (e.g. ``("t", "y", "x")``).
        scale: pixel size per dimension (world units per pixel), default 1.
        translate: world position of pixel 0 per dimension, default 0.
        name: layer name.
        axis_labels: the napari layer's own axis labels (kept verbatim for a round trip).
        units: one unit string (or None) per dimension.
        provenance: free-form JSON-able dict (software, model, prompts summary).
    """

    axes: tuple[str, ...]
    scale: tuple[float, ...]
    translate: tuple[float, ...]
    name: str = "labels"
    axis_labels: tuple[str, ...] | None = None
    units: tuple[str | None, ...] | None = None
    provenance: dict = field(default_factory=dict)


def layer_record(meta: LabelsMeta) -> dict:
    """The napari layer attributes both writers store verbatim (JSON-able)."""
    return {
        "name": meta.name,
        "axis_labels": list(meta.axis_labels) if meta.axis_labels else None,
        "units": list(meta.units) if meta.units else None,
        "scale": list(meta.scale),
        "translate": list(meta.translate),
    }


def check_labels_array(labels) -> np.ndarray:
    """Return ``labels`` as a numpy integer array of 2..5 dims, or raise a ValueError that says
    what to do (bool becomes uint8)."""
    arr = np.asarray(labels)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"labels must have an integer dtype, got {arr.dtype}: these look like an image or "
            "probabilities, not labels; round or threshold them and cast them first "
            "(e.g. labels.astype(np.int32))"
        )
    if not 2 <= arr.ndim <= 5:
        raise ValueError(
            f"labels must have 2 to 5 dimensions (..., y, x), got shape {arr.shape}: "
            + ("add the missing axes (e.g. labels[None])" if arr.ndim < 2 else
               "save one time point or channel at a time, or drop singleton axes")
        )
    if arr.size == 0:
        raise ValueError(f"labels are empty (shape {arr.shape}): there is nothing to save")
    return arr


def _numpy_scalar(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def plain_json(obj, what: str):
    """``obj`` as plain JSON values (numpy scalars become Python numbers); a ValueError naming
    ``what`` when it cannot be saved as JSON. Call before writing anything."""
    return json.loads(json_text(obj, what, default=_numpy_scalar))


def _float_tuple(values, ndim: int, default: float, what: str) -> tuple[float, ...]:
    if values is None:
        return (default,) * ndim
    out = tuple(float(v) for v in values)
    if len(out) != ndim:
        raise ValueError(f"{what} needs {ndim} values (one per dimension), got {len(out)}: {out}")
    if not all(np.isfinite(out)):
        raise ValueError(f"{what} must be finite, got {out}")
    return out


def ngff_axes(ndim: int, axis_labels: Sequence[str] | None) -> tuple[str, ...]:
    """NGFF axis names for ``ndim`` dims: the layer's labels when they are valid NGFF names in
    NGFF order (e.g. ``t, y, x``), else the defaults (``y x``, ``z y x``, ``t z y x``...)."""
    if axis_labels is not None:
        names = tuple(str(a).lower() for a in axis_labels)
        types = [_AXIS_TYPES.get(n) for n in names]
        if (
            len(names) == ndim
            and None not in types
            and len(set(names)) == ndim
            and names[-2:] == ("y", "x")
            and [_ORDER[t] for t in types] == sorted(_ORDER[t] for t in types)
        ):
            return names
    return _DEFAULT_AXES[ndim]


def make_meta(
    labels: np.ndarray,
    *,
    scale=None,
    translate=None,
    name: str = "labels",
    axis_labels=None,
    units=None,
    provenance: dict | None = None,
) -> LabelsMeta:
    """Validate the layer attributes for ``labels`` and bundle them into a ``LabelsMeta``."""
    ndim = labels.ndim
    axis_labels = None if axis_labels is None else tuple(str(a) for a in axis_labels)
    if axis_labels is not None and len(axis_labels) != ndim:
        raise ValueError(f"axis_labels needs {ndim} names, got {axis_labels}")
    if units is not None:
        units = tuple(None if u is None else str(u) for u in units)
        if len(units) != ndim:
            raise ValueError(f"units needs {ndim} entries, got {units}")
    return LabelsMeta(
        axes=ngff_axes(ndim, axis_labels),
        scale=_float_tuple(scale, ndim, 1.0, "scale"),
        translate=_float_tuple(translate, ndim, 0.0, "translate"),
        name=str(name),
        axis_labels=axis_labels,
        units=units,
        provenance=dict(provenance or {}),
    )


def frame_chunks(shape: Sequence[int], max_plane: int = 1024) -> tuple[int, ...]:
    """One (y, x) plane per chunk (split into ``max_plane`` tiles when larger)."""
    lead = (1,) * (len(shape) - 2)
    return lead + tuple(min(int(s), max_plane) for s in shape[-2:])
