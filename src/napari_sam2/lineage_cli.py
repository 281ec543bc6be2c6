"""Export saved labels and their lineage to CTC, GEFF or CSV tracks (and score against a CTC
ground truth).

    napari-sam2 export cells.zarr --ctc cells_RES --geff cells.geff --csv cells.csv
    napari-sam2 export cells.tif --lineage cells.lineage.json --ctc 01_RES --compare 01_GT

The labels (OME-Zarr or TIFF written by napari-sam2, or any NGFF labels / TIFF) must be a
(T, H, W) stack numbered by track. The lineage (which track divided into which) comes from
``--lineage`` (a JSON file of ``Lineage.to_dict``) or else from the labels' own record
(``provenance["lineage"]``, where the plugin saves it); without either, tracks have no
parents. ``--compare GT`` scores the CTC export with py-ctcmetrics (DET, SEG, TRA and
BC(i), divisions found within i frames) against a CTC ground truth folder (``TRA/``, ``SEG/``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from napari_sam2.errors import DamagedFileError, InvalidOptionError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("labels", help="labels file: .zarr or .tif, a (T, H, W) stack")
    parser.add_argument("--lineage", default=None,
                        help="lineage JSON (default: the one saved with the labels, if any)")
    parser.add_argument("--ctc", default=None, help="write a CTC result folder here")
    parser.add_argument("--geff", default=None, help="write a GEFF zarr here (e.g. x.geff)")
    parser.add_argument("--csv", default=None, help="write a CSV of tracks here")
    parser.add_argument("--compare", default=None,
                        help="CTC ground truth folder to score the --ctc export against")


def read_labels_any(path: Path):
    """(labels, provenance) of a .zarr or .tif labels file."""
    from napari_sam2 import io

    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; give a saved labels .zarr or .tif")
    if path.suffix.lower() in (".tif", ".tiff"):
        labels, meta = io.read_labels_tiff(path)
    else:
        labels, meta, _ = io.read_labels_zarr(path)
    return labels, meta.provenance or {}


def read_lineage(path: Path | None, provenance: dict, source: Path):
    """The ``Lineage`` from ``path`` (JSON), else from the labels' provenance, else None."""
    from napari_sam2.engine.lineage import Lineage

    if path is not None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"{path} does not exist; give the lineage JSON file")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DamagedFileError(f"{path} is not JSON ({exc}); give a lineage saved by "
                                   "napari-sam2") from None
        return Lineage.from_dict(data, source=str(path))
    if "lineage" in provenance:
        return Lineage.from_dict(provenance["lineage"], source=f"the lineage saved in {source}")
    return None


def run(args) -> int:
    import numpy as np

    from napari_sam2.io.ctc import ctc_scores, write_ctc
    from napari_sam2.io.geff_tracks import write_geff
    from napari_sam2.io.tracks_csv import write_tracks_csv

    if not (args.ctc or args.geff or args.csv):
        raise InvalidOptionError("nothing to export: give --ctc DIR, --geff PATH and/or "
                                 "--csv FILE")
    if args.compare and not args.ctc:
        raise InvalidOptionError("--compare scores the CTC export: give --ctc DIR too")
    src = Path(args.labels)
    labels, provenance = read_labels_any(src)
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise InvalidOptionError(f"{src} holds a {labels.ndim}-D array {labels.shape}; export "
                                 "needs a (T, H, W) time-lapse of labels")
    lineage = read_lineage(Path(args.lineage) if args.lineage else None, provenance, src)
    parents = lineage.parents() if lineage is not None else {}
    n_tracks = len(np.unique(labels)) - int((labels == 0).any())
    print(f"{src}: {labels.shape[0]} frames, {n_tracks} tracks, {len(parents)} with a parent"
          f"{'' if lineage is not None else ' (no lineage found)'}")
    if args.ctc:
        print(f"CTC:  {write_ctc(args.ctc, labels, parents)}")
    if args.geff:
        print(f"GEFF: {write_geff(args.geff, labels, parents)}")
    if args.csv:
        print(f"CSV:  {write_tracks_csv(args.csv, labels, parents)}")
    if args.compare:
        scores = ctc_scores(args.ctc, args.compare)
        if not scores.get("Valid", 1):
            raise DamagedFileError(f"py-ctcmetrics finds the export {args.ctc} invalid")
        print("scores against " + args.compare + ": " + ", ".join(
            f"{k} {scores[k]:.4f}" for k in ("DET", "SEG", "TRA", "BC(0)", "BC(1)")
            if scores.get(k) is not None))
    return 0
