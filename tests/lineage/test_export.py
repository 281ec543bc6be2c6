"""Export of tracks (io/ctc.py, io/geff_tracks.py, io/tracks_csv.py) and the export command,
checked with the independent tools: py-ctcmetrics and geff's own validators."""

import csv
import json

import geff
import numpy as np
import pytest
from geff.core_io._base_read import read_to_memory
from geff.validate.data import ValidationConfig, validate_data

from napari_sam2.cli import main
from napari_sam2.data.dividing import make_dividing_timelapse
from napari_sam2.engine.lineage import Lineage
from napari_sam2.errors import DamagedFileError, RefusedOverwriteError
from napari_sam2.io import write_labels_tiff
from napari_sam2.io.ctc import (
    ctc_scores,
    ctc_valid,
    parents_of,
    read_ctc,
    write_ctc,
    write_ctc_ground_truth,
)
from napari_sam2.io.geff_tracks import write_geff
from napari_sam2.io.tracks_csv import HEADER, write_tracks_csv


@pytest.fixture(scope="module")
def truth():
    _, labels, tracks = make_dividing_timelapse(n_frames=16, shape=(96, 128), n_cells=3,
                                                n_dividing=2, seed=2)
    return labels, tracks


@pytest.fixture(scope="module")
def gt(truth, tmp_path_factory):
    return write_ctc_ground_truth(tmp_path_factory.mktemp("gt") / "01_GT", *truth)


def test_ctc_round_trip_is_valid_and_scores_perfectly(truth, gt, tmp_path):
    labels, tracks = truth
    res = write_ctc(tmp_path / "01_RES", labels, parents_of(tracks))
    assert (res / "res_track.txt").is_file() and (res / "mask015.tif").is_file()
    back, rows = read_ctc(res)
    assert np.array_equal(back, labels) and np.array_equal(rows, tracks)
    assert ctc_valid(res)
    scores = ctc_scores(res, gt)
    assert scores["TRA"] == scores["DET"] == scores["SEG"] == 1.0
    assert scores["BC(0)"] == 1.0 and scores["gt_divisions"] == 2
    g_labels, g_rows = read_ctc(gt)  # the ground truth is read back too (TRA)
    assert np.array_equal(g_labels, labels) and np.array_equal(g_rows, tracks)


def test_ctc_scores_see_a_missed_division(truth, gt, tmp_path):
    labels, tracks = truth
    parents = parents_of(tracks)
    mother = next(iter(parents.values()))
    daughters = [d for d, p in parents.items() if p == mother]
    merged = labels.copy()  # the mother's label goes on through one daughter, no division
    for d in daughters[:1]:
        merged[merged == d] = mother
    kept = {d: p for d, p in parents.items() if p != mother}
    res = write_ctc(tmp_path / "res", merged, kept)
    assert ctc_valid(res)
    scores = ctc_scores(res, gt)
    assert scores["TRA"] < 1.0 and scores["BC(0)"] < 1.0


def test_ctc_splits_a_track_with_a_gap(tmp_path):
    labels = np.zeros((5, 16, 16), np.int32)
    labels[[0, 1, 3, 4], 2:6, 2:6] = 1
    labels[0:5, 10:14, 10:14] = 2
    res = write_ctc(tmp_path / "r", labels)
    back, rows = read_ctc(res)
    assert rows.tolist() == [[1, 0, 1, 0], [2, 0, 4, 0], [3, 3, 4, 1]]
    assert (back[3] == 3).sum() == 16 and not (back == 1)[3:].any()
    assert ctc_valid(res)


def test_parent_overlapping_daughter_is_refused(tmp_path):
    labels = np.zeros((3, 8, 8), np.int32)
    labels[:, 1:3, 1:3] = 1
    labels[1:, 5:7, 5:7] = 2
    with pytest.raises(ValueError, match="parent 1 is still labelled"):
        write_ctc(tmp_path / "r", labels, {2: 1})
    assert not (tmp_path / "r").exists()


def test_exports_never_replace_foreign_files(truth, tmp_path):
    labels, tracks = truth
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    csv_file = tmp_path / "data.csv"
    csv_file.write_text("a,b\n1,2\n")
    for fn, target in ((write_ctc, folder), (write_geff, folder), (write_tracks_csv, csv_file)):
        with pytest.raises(RefusedOverwriteError, match="Nothing was changed"):
            fn(target, labels, parents_of(tracks))
    assert (folder / "notes.txt").read_text() == "keep me" and len(list(folder.iterdir())) == 1
    assert csv_file.read_text() == "a,b\n1,2\n"
    geff_dir = write_geff(tmp_path / "t.geff", labels, parents_of(tracks))
    with pytest.raises(RefusedOverwriteError, match="another kind"):
        write_ctc(geff_dir, labels)
    write_ctc(tmp_path / "ctc", labels)
    write_ctc(tmp_path / "ctc", labels, parents_of(tracks))  # our own export is replaced
    assert read_ctc(tmp_path / "ctc")[1].tolist() == tracks.tolist()


def test_geff_validates_with_geffs_own_checks(truth, tmp_path):
    labels, tracks = truth
    path = write_geff(tmp_path / "tracks.geff", labels, parents_of(tracks))
    geff.validate_structure(path)
    memory = read_to_memory(path)
    validate_data(memory, ValidationConfig(graph=True, tracklet=True))
    n_nodes = sum(int(E - B + 1) for _, B, E, _ in tracks)
    assert len(memory["node_ids"]) == n_nodes
    n_edges = n_nodes - len(tracks) + int((tracks[:, 3] > 0).sum())
    assert len(memory["edge_ids"]) == n_edges
    props = memory["node_props"]
    node = {k: props[k]["values"] for k in ("t", "track_id", "area", "y", "x")}
    first = np.argmax(node["track_id"] == tracks[-1, 0])
    t = int(node["t"][first])
    ys, xs = np.nonzero(labels[t] == tracks[-1, 0])
    assert node["area"][first] == len(ys) and t == tracks[-1, 1]
    assert abs(node["y"][first] - ys.mean()) < 1e-6 and abs(node["x"][first] - xs.mean()) < 1e-6
    ids = list(memory["node_ids"])
    edges = {(int(a), int(b)) for a, b in memory["edge_ids"]}
    for L, B, _, P in tracks:
        if P:  # parent's last node -> daughter's first node
            last = ids[np.flatnonzero(node["track_id"] == P)[-1]]
            assert (int(last), int(ids[np.flatnonzero(node["track_id"] == L)[0]])) in edges


def test_csv_rows(truth, tmp_path):
    labels, tracks = truth
    path = write_tracks_csv(tmp_path / "t.csv", labels, parents_of(tracks))
    rows = list(csv.DictReader(path.open()))
    assert list(rows[0]) == HEADER
    assert len(rows) == sum(int(E - B + 1) for _, B, E, _ in tracks)
    daughter = tracks[tracks[:, 3] > 0][0]
    mine = [r for r in rows if int(r["track_id"]) == daughter[0]]
    assert int(mine[0]["frame"]) == daughter[1] and int(mine[0]["parent"]) == daughter[3]
    assert int(mine[0]["area"]) == (labels[daughter[1]] == daughter[0]).sum()
    write_tracks_csv(path, labels)  # ours: replaced
    assert all(r["parent"] == "" for r in csv.DictReader(path.open()))


def test_read_ctc_damaged(tmp_path, truth):
    res = write_ctc(tmp_path / "r", truth[0], parents_of(truth[1]))
    (res / "res_track.txt").write_text("1 0 x 0\n")
    with pytest.raises(DamagedFileError, match="L B E P"):
        read_ctc(res)
    res = write_ctc(tmp_path / "r", truth[0])
    (res / "mask003.tif").unlink()
    with pytest.raises(DamagedFileError, match="without gaps"):
        read_ctc(res)
    with pytest.raises(FileNotFoundError, match="res_track.txt"):
        read_ctc(tmp_path)


def test_export_command(truth, gt, tmp_path, capsys):
    labels, tracks = truth
    tif = tmp_path / "labels.tif"
    write_labels_tiff(tif, labels)
    lin = Lineage.from_label_stack(labels, parents_of(tracks))
    lin_file = tmp_path / "lineage.json"
    lin_file.write_text(json.dumps(lin.to_dict()))
    rc = main(["export", str(tif), "--lineage", str(lin_file), "--ctc", str(tmp_path / "res"),
               "--geff", str(tmp_path / "t.geff"), "--csv", str(tmp_path / "t.csv"),
               "--compare", str(gt)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "TRA 1.0000" in out and "4 with a parent" in out
    assert read_ctc(tmp_path / "res")[1].tolist() == tracks.tolist()
    geff.validate_structure(tmp_path / "t.geff")
    saved = tmp_path / "with_lineage.tif"  # the lineage saved in the labels' record
    write_labels_tiff(saved, labels, provenance={"lineage": lin.to_dict()})
    assert main(["export", str(saved), "--csv", str(tmp_path / "s.csv")]) == 0
    assert "4 with a parent" in capsys.readouterr().out
    lin_file.write_text("{}")
    assert main(["export", str(tif), "--lineage", str(lin_file), "--csv",
                 str(tmp_path / "u.csv")]) == 2
    assert "not a valid napari-sam2 lineage" in capsys.readouterr().err
    assert main(["export", str(tif)]) == 2
    assert "nothing to export" in capsys.readouterr().err
