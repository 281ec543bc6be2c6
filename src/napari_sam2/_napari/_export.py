"""*Export tracks...*: the labels of one stack and their lineage, through ``napari_sam2.io``.

Three formats (docs/lineage.md): a Cell Tracking Challenge result folder (``res_track.txt`` +
``maskNNN.tif``), a GEFF zarr (``*.geff`` / ``*.zarr``) and a CSV table (``*.csv``). The writers
are atomic and replace only what napari-sam2 exported before (``RefusedOverwriteError``
otherwise, naming the target), so the widget just shows their message.
"""

from __future__ import annotations

from pathlib import Path

#: format -> the file dialog's filter for it
EXPORT_FILTERS = {
    "ctc": "Cell Tracking Challenge folder (*)",
    "geff": "GEFF graph (*.geff *.zarr)",
    "csv": "CSV table of tracks (*.csv)",
}


def export_kind(path, kind: str | None = None) -> str:
    """The format to write: ``kind`` when given, else from the name (``.csv`` -> csv,
    ``.geff``/``.zarr`` -> geff, anything else a CTC folder)."""
    if kind is not None:
        if kind not in EXPORT_FILTERS:
            raise ValueError(f"unknown export format {kind!r}: use one of {list(EXPORT_FILTERS)}")
        return kind
    suffix = Path(str(path).rstrip("/")).suffix.lower()
    return {".csv": "csv", ".geff": "geff", ".zarr": "geff"}.get(suffix, "ctc")


def export_tracks(path, labels, parents: dict, kind: str | None = None) -> tuple[Path, str]:
    """Write ``labels`` (T, H, W) integers, label k = track k, with ``parents`` ({daughter:
    parent}) to ``path`` in ``kind`` (see :func:`export_kind`). Returns (path written, kind).

    Raises what the writers raise: ValueError (bad labels or lineage), RefusedOverwriteError
    (the target exists and is not a napari-sam2 export), OSError.
    """
    kind = export_kind(path, kind)
    if kind == "ctc":
        from napari_sam2.io.ctc import write_ctc as write
    elif kind == "geff":
        from napari_sam2.io.geff_tracks import write_geff as write
    else:
        from napari_sam2.io.tracks_csv import write_tracks_csv as write
    return Path(write(Path(path), labels, parents)), kind
