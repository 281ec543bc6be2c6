"""An OME-Zarr label store written one plane at a time while a long run computes it.

``write_labels_zarr`` writes a whole array at once; a headless run over 10,000 frames must not
hold the whole label stack, and when it is killed the planes already computed must stay. A
:class:`LabelStream` is the same NGFF 0.5 label image (readable by ``read_labels_zarr`` and the
napari reader at any moment), created empty and filled in place:

* :meth:`LabelStream.create` builds the empty store (group metadata + array ``0``, one chunk
  per (y, x) plane) in a hidden sibling and swaps it in atomically. An existing target is
  replaced only when napari-sam2 wrote it (``check_replaceable``, docs/safety.md).
* :meth:`LabelStream.write` stores one plane; zarr writes each chunk file to a temporary name
  and renames it, so a plane on disk is either the old one or the new one per chunk (a plane
  larger than 1024 x 1024 has several chunks).
* The record ``napari_sam2.run`` in ``zarr.json`` says ``"complete": false`` until
  :meth:`LabelStream.finish` rewrites it (atomically) with ``true``; ``"key"`` identifies
  what is being computed so that :meth:`LabelStream.reopen` continues only the same run.

numpy and zarr only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_sam2._safe_write import atomic_dir, json_text, write_text_atomic
from napari_sam2.errors import DamagedFileError, RefusedOverwriteError
from napari_sam2.io._axes import frame_chunks, layer_record, make_meta, plain_json
from napari_sam2.io._zarr_store import (
    PROVENANCE_KEY,
    check_labels_group,
    check_replaceable,
    image_of,
    labels_target,
    load_json,
    register_in_image,
)
from napari_sam2.io.ome_zarr import _ngff_attrs

__all__ = ["LabelStream", "RUN_KEY", "run_state"]

#: key of the run record inside the ``napari_sam2`` attributes
RUN_KEY = "run"


def run_state(path) -> dict | None:
    """The run record (``{"complete": bool, "key": str, ...}``) of the label store at ``path``
    (or ``path/labels/<name>`` of an OME-Zarr image), or None when there is no such store or
    it was not written by a :class:`LabelStream`. Never raises."""
    try:
        doc = load_json(Path(path) / "zarr.json")
    except (OSError, DamagedFileError):
        return None
    record = (doc.get("attributes") or {}).get(PROVENANCE_KEY)
    run = record.get(RUN_KEY) if isinstance(record, dict) else None
    return run if isinstance(run, dict) else None


class LabelStream:
    """A label store on disk, filled plane by plane. Shape (T, H, W) (or any (..., H, W):
    ``frame`` indexes the first axis)."""

    def __init__(self, target: Path, array) -> None:
        self.target = Path(target)
        self.array = array
        self.shape = tuple(array.shape)

    # ------------------------------------------------------------------ opening
    @classmethod
    def create(cls, path, shape, dtype=np.uint32, *, key: str, name: str = "labels",
               axis_labels=None, scale=None, translate=None, units=None,
               provenance: dict | None = None) -> LabelStream:
        """Create an empty (all 0) store at ``path`` (``path/labels/<name>`` for an OME-Zarr
        image), replacing an earlier napari-sam2 label store there.

        Args:
            shape: (T, H, W) (2 to 5 dims); dtype: an integer dtype.
            key: what is computed (e.g. a hash of the prompts and settings), for ``reopen``.
            name, axis_labels, scale, translate, units, provenance: as ``write_labels_zarr``.

        Raises:
            RefusedOverwriteError: the target holds something napari-sam2 did not write.
            ValueError: bad shape, dtype or attributes (nothing written).
        """
        if not np.issubdtype(np.dtype(dtype), np.integer):
            raise ValueError(f"labels need an integer dtype, got {np.dtype(dtype)}")
        shape = tuple(int(s) for s in shape)
        if not 2 <= len(shape) <= 5 or min(shape) < 1:
            raise ValueError(f"labels need 2 to 5 non-empty dimensions, got shape {shape}")
        meta = make_meta(np.broadcast_to(np.zeros((), dtype), shape), scale=scale,
                         translate=translate, name=name, axis_labels=axis_labels, units=units,
                         provenance=provenance)
        run = {"complete": False, "key": str(key), "shape": list(shape)}
        record = {**layer_record(meta), **meta.provenance, RUN_KEY: run}
        attrs = plain_json({"ome": _ngff_attrs(meta, None), PROVENANCE_KEY: record},
                           f"the metadata of {path}")
        target = labels_target(path, meta.name)
        check_replaceable(target)
        if image_of(target) is not None:
            check_labels_group(image_of(target))

        def write(tmp: Path) -> None:
            import zarr

            root = zarr.open_group(str(tmp), mode="w", zarr_format=3, attributes=attrs)
            root.create_array("0", shape=shape, dtype=dtype, chunks=frame_chunks(shape),
                              fill_value=0, dimension_names=list(meta.axes))

        def verify(tmp: Path) -> None:
            back = load_json(tmp / "zarr.json").get("attributes")
            if json_text(back, "attributes") != json_text(attrs, "attributes"):
                raise OSError(f"the store created at {tmp} does not read back as written")

        atomic_dir(target, write, verify)
        register_in_image(target)
        return cls._open(target)

    @classmethod
    def reopen(cls, path, *, key: str, name: str = "labels") -> LabelStream:
        """Open an unfinished store made by :meth:`create` with the same ``key`` to go on.

        Raises:
            FileNotFoundError: nothing there.
            RefusedOverwriteError: the store is not an unfinished run of the same ``key`` (or
                not napari-sam2's); the message says what to do.
        """
        target = labels_target(path, name)
        if not target.exists():
            raise FileNotFoundError(f"cannot resume: {target} does not exist; run without "
                                    "--resume to start")
        check_replaceable(target)
        run = run_state(target)
        if run is None:
            raise RefusedOverwriteError(
                f"cannot resume into {target}: it was not written by a napari-sam2 run (no "
                "run record); use --overwrite instead of --resume to replace it")
        if run.get("key") != key:
            raise RefusedOverwriteError(
                f"cannot resume into {target}: it was started with other prompts, settings or "
                "input; start again with --overwrite instead of --resume (it is replaced)")
        return cls._open(target)

    @classmethod
    def _open(cls, target: Path) -> LabelStream:
        import zarr

        return cls(target, zarr.open_array(str(target / "0"), mode="r+"))

    # ------------------------------------------------------------------ planes
    def read(self, frame: int) -> np.ndarray:
        """Plane ``frame`` (H, W) (zeros where nothing was written)."""
        return np.asarray(self.array[int(frame)])

    def write(self, frame: int, plane: np.ndarray) -> None:
        """Store plane ``frame`` ((H, W), cast to the store's dtype)."""
        plane = np.asarray(plane)
        if plane.shape != self.shape[1:]:
            raise ValueError(f"plane {frame} has shape {plane.shape}, the store "
                             f"{self.target} expects {self.shape[1:]}")
        self.array[int(frame)] = plane.astype(self.array.dtype, copy=False)

    # ------------------------------------------------------------------ record
    @property
    def complete(self) -> bool:
        return bool((run_state(self.target) or {}).get("complete"))

    def update_record(self, **fields) -> None:
        """Add ``fields`` to the store's run record (zarr.json rewritten atomically)."""
        file = self.target / "zarr.json"
        doc = load_json(file)
        record = doc["attributes"][PROVENANCE_KEY]
        record[RUN_KEY] = {**record.get(RUN_KEY, {}), **plain_json(fields, f"{file}")}
        write_text_atomic(file, json_text(doc, f"{file}", indent=2) + "\n")

    def finish(self, **fields) -> None:
        """Mark the run complete (after every plane was written)."""
        self.update_record(complete=True, **fields)
