"""npe2 reader: our OME-Zarr labels (and any NGFF 0.5 label image) and our OME-TIFF labels.

napari offers a file to every plugin whose ``filename_patterns`` match its name, and asks the
user to choose when several do. The manifest therefore claims only TIFFs named ``*labels.tif``
(the default name of our Labels layers ends in "labels"): every other TIFF goes straight to
napari's own reader. Of the TIFFs so named, we read ours and integer single-channel TIFFs of
other software (as labels); other ``.zarr`` stores and TIFFs are left to napari (None).
A store or TIFF that claims to be labels but is damaged (unreadable ``zarr.json``, missing
array, undecodable chunk, truncated pixels) is claimed, and reading it raises
:class:`~napari_sam2.errors.DamagedFileError` with the file named and what to do, which napari
shows to the user.
"""

from __future__ import annotations

from pathlib import Path

from napari_sam2._napari._writer import PROVENANCE_KEY


def napari_get_reader(path):
    """Return a reader for ``path`` when it holds labels we can read, else None (never raises)."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    path = Path(str(path).rstrip("/"))
    suffix = path.suffix.lower()
    if suffix == ".zarr":
        from napari_sam2.io import find_label_image, looks_like_labels_zarr

        try:
            ours = find_label_image(path) is not None or looks_like_labels_zarr(path)
        except Exception:  # noqa: BLE001 - napari_get_reader must never raise
            return None
        return read_zarr if ours else None
    if suffix in (".tif", ".tiff"):
        from napari_sam2.io import is_our_tiff

        named = path.stem.lower().endswith("labels")
        return read_tiff if is_our_tiff(path) or (named and _integer_tiff(path)) else None
    return None


def _integer_tiff(path: Path) -> bool:
    """A TIFF of integers without colour samples (labels from other software). Never raises."""
    try:
        import numpy as np
        import tifffile

        with tifffile.TiffFile(str(path)) as tif:
            page = tif.pages[0]
            return np.issubdtype(page.dtype, np.integer) and page.samplesperpixel == 1
    except Exception:  # noqa: BLE001 - not a TIFF we can read: napari's reader says so
        return False


def _layer_data(labels, meta, path) -> list[tuple]:
    from napari_sam2._napari._big_labels import display_levels

    levels = display_levels(labels)
    kwargs = {
        "name": meta.name,
        "scale": meta.scale,
        "translate": meta.translate,
        "metadata": {PROVENANCE_KEY: meta.provenance},
    }
    if meta.axis_labels:
        kwargs["axis_labels"] = meta.axis_labels
    if meta.units:
        kwargs["units"] = tuple("pixel" if u is None else u for u in meta.units)
    if levels is not None:
        kwargs["multiscale"] = True
    data = labels if levels is None else levels
    return [(data, kwargs, "labels"), *_tracks_layer(labels, meta, path)]


def _tracks_layer(labels, meta, path) -> list[tuple]:
    """The Tracks layer of (T, H, W) labels saved with a lineage (see ``_tracks.py``), named
    as the widget names it, so that the widget updates this layer when it uses the labels."""
    from napari_sam2._napari._big_labels import plane_centroids
    from napari_sam2._napari._tracks import (
        LINEAGE_KEY,
        TRACKS_SUFFIX,
        lineage_graph,
        saved_parents,
        tracks_table,
    )

    if labels.ndim != 3 or not meta.provenance.get(LINEAGE_KEY):
        return []
    plane = (slice(None), slice(None))  # chunked labels: their stored chunks only
    table = tracks_table({t: found for t in range(labels.shape[0])
                          if (found := plane_centroids(labels, (t, *plane)))})
    if not len(table):
        return []
    parents = saved_parents(meta.provenance, f"the lineage record in {path}")
    graph = lineage_graph(parents, table[:, 0].astype(int))
    kwargs = {"name": f"{meta.name}{TRACKS_SUFFIX}", "graph": graph, "scale": meta.scale,
              "translate": meta.translate, "tail_length": max(labels.shape[0] - 1, 1)}
    return [(table, kwargs, "tracks")]


def read_zarr(path) -> list[tuple]:
    """Labels above ``_big_labels.LABELS_IN_MEMORY_BYTES`` come back chunked (their stored
    chunks copied into memory; edits never touch the file), multiscale when a plane is too
    large to draw whole (issue 19)."""
    from napari_sam2._napari._big_labels import LABELS_IN_MEMORY_BYTES
    from napari_sam2.io import read_labels_zarr

    path = path[0] if isinstance(path, (list, tuple)) else path
    labels, meta, _colors = read_labels_zarr(str(path).rstrip("/"),
                                             lazy_above=LABELS_IN_MEMORY_BYTES)
    return _layer_data(labels, meta, path)


def read_tiff(path) -> list[tuple]:
    from napari_sam2.io import read_labels_tiff

    path = path[0] if isinstance(path, (list, tuple)) else path
    labels, meta = read_labels_tiff(path)
    return _layer_data(labels, meta, path)
