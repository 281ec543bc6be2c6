"""Labels file formats (numpy, zarr and tifffile only; no torch, no Qt).

* :func:`write_labels_zarr` / :func:`read_labels_zarr`: OME-Zarr (NGFF 0.5, zarr v3) labels;
* :func:`write_labels_tiff` / :func:`read_labels_tiff`: OME-TIFF labels;
* :func:`write_ctc` / :func:`read_ctc`, :func:`write_geff`, :func:`write_tracks_csv`: tracks
  of a label stack with its lineage (docs/lineage.md);
* :func:`labels_target`: where labels saved to a path go (``image.zarr/labels/<name>`` for an
  OME-Zarr image).

Writers are atomic and refuse to replace what they did not write (RefusedOverwriteError);
readers raise DamagedFileError for damaged or unsupported files (docs/safety.md).
"""

from napari_sam2.io._axes import LabelsMeta
from napari_sam2.io._zarr_store import labels_target, looks_like_labels_zarr
from napari_sam2.io.ctc import read_ctc, write_ctc
from napari_sam2.io.geff_tracks import write_geff
from napari_sam2.io.ome_zarr import find_label_image, read_labels_zarr, write_labels_zarr
from napari_sam2.io.tiff import is_our_tiff, read_labels_tiff, write_labels_tiff
from napari_sam2.io.tracks_csv import write_tracks_csv

__all__ = [
    "LabelsMeta",
    "find_label_image",
    "is_our_tiff",
    "labels_target",
    "looks_like_labels_zarr",
    "read_ctc",
    "read_labels_tiff",
    "read_labels_zarr",
    "write_ctc",
    "write_geff",
    "write_labels_tiff",
    "write_labels_zarr",
    "write_tracks_csv",
]
