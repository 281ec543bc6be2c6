"""Cell divisions in the widget: marking one by hand, the live Tracks layer, lineage saved with
the labels, and automatic detection's default (on along t, off along z)."""

import numpy as np
import pytest

from napari_sam2._napari._tracks import lineage_graph, plane_centroids, tracks_table
from tests.napari.conftest import wait_idle

T_SPLIT = 3  # the first frame on which the two daughters are apart


def dividing_stack(n_frames=6, shape=(64, 96)):
    """(T, H, W) uint16: one bright disk (radius 11) at the centre on frames 0..2, two disks
    (radius 8) moving apart along x from frame 3 on; and the daughters' centres per frame."""
    rng = np.random.default_rng(0)
    img = rng.normal(500, 30, (n_frames, *shape)).clip(0)
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    cy, cx = shape[0] // 2, shape[1] // 2
    centres = {}
    for t in range(n_frames):
        if t < T_SPLIT:
            disks = [(cy, cx, 11)]
        else:
            d = 11 + 3 * (t - T_SPLIT)
            disks = [(cy, cx - d, 8), (cy, cx + d, 8)]
            centres[t] = [(cy, cx - d), (cy, cx + d)]
        for y, x, r in disks:
            img[t][(rows - y) ** 2 + (cols - x) ** 2 <= r * r] = 3000
    return img.astype(np.uint16), centres


# ---------------------------------------------------------------------- numpy parts
def test_centroids_table_and_graph():
    plane = np.zeros((10, 12), np.int32)
    plane[2:4, 2:6] = 3  # centre (2.5, 3.5)
    plane[7, 10] = 9
    assert plane_centroids(plane) == {3: (2.5, 3.5), 9: (7.0, 10.0)}
    assert plane_centroids(np.zeros((4, 4), int)) == {}
    table = tracks_table({1: {3: (2.5, 3.5)}, 0: {3: (1.0, 1.0), 9: (7.0, 10.0)}})
    np.testing.assert_array_equal(table, [[3, 0, 1, 1], [3, 1, 2.5, 3.5], [9, 0, 7, 10]])
    assert tracks_table({0: {1: (1.0, 2.0)}}, fixed=(4.0,)).tolist() == [[1, 0, 4, 1, 2]]
    assert tracks_table({}).shape == (0, 4)
    # a parent that is not shown (no pixels left) is left out of napari's graph
    assert lineage_graph({5: 1, 6: 1, 7: 2, 1: None}, shown=[1, 5, 6, 7]) == {5: [1], 6: [1]}


# ---------------------------------------------------------------------- the viewer
def clicked(viewer, model, qtbot):
    """``dividing_stack`` in ``viewer`` with the widget, ``model`` set and the cell clicked on
    frame 0 (object 1). Returns (viewer, widget, controller, daughters' centres)."""
    images, centres = dividing_stack()
    viewer.add_image(images, name="cells", axis_labels=("t", "y", "x"),
                     contrast_limits=(400, 3200))
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2")
    c = widget.controller
    c.set_model(model, "sam2_demo")
    c.go_to_frame(0)
    c.prompts.add_point((0, 32, 48), True)
    wait_idle(qtbot, c)
    return viewer, widget, c, centres


@pytest.fixture
def divided(make_napari_viewer, trained_demo_model, qtbot):
    """The widget on ``dividing_stack`` with the trained demo model: the cell clicked on
    frame 0 and propagated to the last frame, then a division marked by hand on frame 3.

    Returns (viewer, widget, controller, centres, (parent, d1, d2))."""
    viewer, widget, c, centres = clicked(make_napari_viewer(), trained_demo_model, qtbot)
    c.propagate("forward", divisions=False)
    wait_idle(qtbot, c)
    assert (c.labels_layer.data[T_SPLIT:] == 1).any()  # SAM went on with one of them

    c.go_to_frame(T_SPLIT)
    assert c.mark_division()
    d1, d2 = c.division.daughters
    assert d1 not in (0, 1) and d2 not in (0, 1, d1)
    assert "click the first daughter (1 of 2" in widget._status_label.text()
    assert widget._divide_button.text() == "Cancel division (Esc)"
    (y1, x1), (y2, x2) = centres[T_SPLIT]
    c.prompts.add_point((T_SPLIT, y1, x1), True)
    assert "click the second daughter (2 of 2" in widget._status_label.text()
    c.prompts.add_point((T_SPLIT, y2, x2), True)
    wait_idle(qtbot, c)
    return viewer, widget, c, centres, (1, d1, d2)


def test_a_division_marked_by_hand(divided, qtbot):
    viewer, widget, c, centres, (parent, d1, d2) = divided
    labels = c.labels_layer.data
    assert c.division is None and widget._divide_button.text() == "Mark division"
    assert {parent, d1, d2} <= c.objects
    assert "divided on frame 3" in widget._status_label.text()
    # two new objects on the division frame, each on its own daughter; the parent has ended
    for oid, (y, x) in zip((d1, d2), centres[T_SPLIT]):
        assert labels[T_SPLIT, y, x] == oid
    assert not (labels[T_SPLIT:] == parent).any()
    assert all((labels[t] == parent).any() for t in range(T_SPLIT))
    session = c.sessions.get(c.image_layer, c.current_ref(), create=False)
    assert session.lineage.parents() == {d1: parent, d2: parent}
    assert session.lineage.tracks[parent].end == T_SPLIT - 1

    # the daughters are tracked on; the Tracks layer shows the branch
    c.propagate("forward", divisions=False)
    wait_idle(qtbot, c)
    for t in range(T_SPLIT, labels.shape[0]):
        for oid, (y, x) in zip((d1, d2), centres[t]):
            assert labels[t, y, x] == oid, (t, oid)
    tracks = c.tracks.layer
    assert tracks is not None and tracks in viewer.layers and tracks.name == "cells SAM labels tracks"
    assert tracks.graph == {d1: [parent], d2: [parent]}
    ids = tracks.data[:, 0].astype(int)
    assert sorted(set(ids)) == sorted({parent, d1, d2})
    assert sorted(tracks.data[ids == parent, 1]) == list(range(T_SPLIT))
    assert sorted(tracks.data[ids == d1, 1]) == list(range(T_SPLIT, labels.shape[0]))
    # painting by hand: the painted frame's centroids follow
    c.go_to_frame(0)
    c.labels_layer.paint((0, 5, 5), 9, refresh=True)
    qtbot.waitUntil(lambda: 9 in c.tracks.layer.data[:, 0], timeout=5000)
    assert c.tracks.layer.data[c.tracks.layer.data[:, 0] == 9, 1:].tolist() == [[0, 5, 5]]
    c.labels_layer.paint((0, 5, 5), 0, refresh=True)
    qtbot.waitUntil(lambda: 9 not in c.tracks.layer.data[:, 0], timeout=5000)
    assert c.labels_layer.metadata["napari_sam2"]["lineage"]["tracks"] == [
        {"id": parent, "start": 0, "end": T_SPLIT - 1, "parent": None},
        {"id": d1, "start": T_SPLIT, "end": labels.shape[0] - 1, "parent": parent},
        {"id": d2, "start": T_SPLIT, "end": labels.shape[0] - 1, "parent": parent},
    ]


def test_undo_takes_the_division_back(divided):
    viewer, widget, c, centres, (parent, d1, d2) = divided
    c.undo()
    labels = c.labels_layer.data
    assert not np.isin(labels, [d1, d2]).any()
    assert (labels[T_SPLIT:] == parent).any()  # the parent's pixels are back
    assert d1 not in c.objects and d2 not in c.objects
    session = c.sessions.get(c.image_layer, c.current_ref(), create=False)
    assert session.lineage.parents() == {} and session.lineage.tracks[parent].end is None
    assert c.tracks.layer.graph == {}
    assert set(c.tracks.layer.data[:, 0].astype(int)) == {parent}
    assert c.lineage_parents() == {}  # the record written after the division does not count
    assert [t["parent"] for t in c.labels_layer.metadata["napari_sam2"]["lineage"]["tracks"]] \
        == [None]


def test_cancel_and_wrong_frame(make_napari_viewer, trained_demo_model, qtbot):
    viewer, widget, c, centres = clicked(make_napari_viewer(), trained_demo_model, qtbot)
    c.go_to_frame(T_SPLIT)
    widget._divide_button.click()
    assert c.division is not None
    (y1, x1), _ = centres[T_SPLIT]
    c.prompts.add_point((T_SPLIT + 1, y1, x1), True)  # another frame: refused, not kept
    assert "clicked on frame 3" in widget._status_label.text()
    assert c.division.clicks == [] and len(c.prompts.points.data) == 1
    c.prompts.add_point((T_SPLIT, y1, x1), True)
    assert len(c.division.clicks) == 1
    from napari.utils.key_bindings import coerce_keybinding

    esc = coerce_keybinding("Escape")
    assert esc in viewer.keymap  # Esc cancels while a division is being marked
    viewer.keymap[esc](viewer)  # cancel: its click goes, nothing was computed
    assert c.division is None and len(c.prompts.points.data) == 1
    assert "cancelled" in widget._status_label.text()
    assert esc not in viewer.keymap and widget._divide_button.text() == "Mark division"
    assert c.objects == {1} and set(np.unique(c.labels_layer.data)) == {0, 1}
    c.prompts.add_point((T_SPLIT, y1, x1), True)  # clicks go to the current object again
    wait_idle(qtbot, c)
    assert c.labels_layer.data[T_SPLIT, y1, x1] == 1

    # a refused division (the parent has no prompt before frame 0): one line, nothing changes
    c.go_to_frame(0)
    before = c.labels_layer.data.copy()
    assert c.mark_division()
    c.prompts.add_point((0, 32, 20), True)
    c.prompts.add_point((0, 32, 76), True)
    wait_idle(qtbot, c)
    assert "has no prompt before frame 0" in widget._status_label.text()
    assert c.objects == {1} and c.division is None and len(c.prompts.points.data) == 2
    np.testing.assert_array_equal(c.labels_layer.data, before)
    session = c.sessions.get(c.image_layer, c.current_ref(), create=False)
    assert session.obj_ids == [1] and session.lineage.parents() == {}

    # the Labels layer removed: the Tracks layer stays, no longer followed
    tracks = c.tracks.layer
    viewer.layers.remove(c.labels_layer)
    assert c.tracks.labels is None and tracks in viewer.layers


def test_division_detection_default_follows_the_axis(make_napari_viewer):
    viewer = make_napari_viewer()
    img = np.zeros((4, 32, 32), np.uint16)
    viewer.add_image(img, name="movie", axis_labels=("t", "y", "x"))
    viewer.add_image(img, name="volume", axis_labels=("z", "y", "x"))
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2")
    widget._image_combo.setCurrentText("movie")
    assert widget._divisions_check.isChecked()
    widget._image_combo.setCurrentText("volume")
    assert not widget._divisions_check.isChecked()


@pytest.fixture
def tracked(divided, qtbot):
    """``divided``, then the daughters propagated to the last frame."""
    viewer, widget, c, centres, ids = divided
    c.propagate("forward", divisions=False)
    wait_idle(qtbot, c)
    return divided


def test_export_round_trips(tracked, tmp_path):
    import geff

    from napari_sam2.io.ctc import read_ctc

    viewer, widget, c, centres, (parent, d1, d2) = tracked
    labels = np.asarray(c.labels_layer.data)
    last = labels.shape[0] - 1
    out = c.export_tracks(tmp_path / "res")  # a CTC folder: no suffix
    assert out == str(tmp_path / "res") and "(ctc)" in widget._status_label.text()
    back, rows = read_ctc(out)
    np.testing.assert_array_equal(back, labels)
    assert sorted(rows.tolist()) == [[parent, 0, T_SPLIT - 1, 0], [d1, T_SPLIT, last, parent],
                                     [d2, T_SPLIT, last, parent]]

    graph, _ = geff.read(c.export_tracks(tmp_path / "tracks.geff"), backend="networkx")
    assert graph.number_of_nodes() == sum(len(np.unique(p)) - 1 for p in labels)
    divisions = [n for n in graph if graph.out_degree(n) == 2]
    assert len(divisions) == 1 and graph.nodes[divisions[0]]["t"] == T_SPLIT - 1

    import pandas as pd

    table = pd.read_csv(c.export_tracks(tmp_path / "tracks.csv"))
    assert len(table) == graph.number_of_nodes()
    assert table.groupby("track_id")["parent"].first().fillna(0).astype(int).to_dict() == {
        parent: 0, d1: parent, d2: parent}

    # a target that is not ours: one line, nothing written or changed
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    assert c.export_tracks(theirs) is None
    assert "Refusing to export" in widget._status_label.text()
    assert [p.name for p in theirs.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("suffix", [".zarr", ".tif"])
def test_lineage_survives_save_and_reopen(tracked, tmp_path, suffix):
    viewer, widget, c, centres, (parent, d1, d2) = tracked
    layer = c.labels_layer
    shown = c.tracks.layer
    viewer.layers.selection = {layer}
    saved = viewer.layers.save(str(tmp_path / f"cells{suffix}"), selected=True,
                               plugin="napari-sam2")
    assert saved
    lineage = layer.metadata["napari_sam2"]["lineage"]
    opened = viewer.open(saved[0], plugin="napari-sam2")
    labels, tracks = opened
    assert labels.metadata["napari_sam2"]["lineage"] == lineage
    np.testing.assert_array_equal(labels.data, layer.data)
    assert type(tracks).__name__ == "Tracks" and tracks.graph == shown.graph
    np.testing.assert_allclose(tracks.data, shown.data)

    # the command line exports the saved file as the widget exports the labels
    from napari_sam2.cli import main
    from napari_sam2.io.ctc import read_ctc

    assert main(["export", saved[0], "--ctc", str(tmp_path / "cli_RES")]) == 0
    c.export_tracks(tmp_path / "widget_RES")
    for a, b in zip(read_ctc(tmp_path / "cli_RES"), read_ctc(tmp_path / "widget_RES")):
        np.testing.assert_array_equal(a, b)
    assert sorted(read_ctc(tmp_path / "cli_RES")[1][:, 3].tolist()) == [0, parent, parent]

    # the widget picks the reopened labels: it shows (and keeps updating) their Tracks layer
    widget._labels_combo.setCurrentText(labels.name)
    widget._on_labels_chosen()
    assert c.labels_layer is labels and c.tracks.layer is tracks
    assert c.lineage_parents() == {d1: parent, d2: parent}


def clicked_dividing_cell(viewer, model, qtbot):
    """``make_dividing_timelapse`` with one cell dividing on frame 8 (seed 0) in ``viewer``,
    the widget docked with ``model``, the cell clicked at its centre on frame 0.

    Returns (widget, images (T, H, W), the CTC lineage rows)."""
    from napari_sam2.data.dividing import make_dividing_timelapse

    images, truth, rows = make_dividing_timelapse(n_frames=16, shape=(64, 96), n_cells=1,
                                                  n_dividing=1, seed=0)
    lo, hi = (float(v) for v in np.percentile(images, (0.5, 99.8)))
    viewer.add_image(images, name="cells", axis_labels=("t", "y", "x"), contrast_limits=(lo, hi))
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2")
    c = widget.controller
    c.set_model(model, "sam2_demo")
    c.go_to_frame(0)
    r, col = np.nonzero(truth[0] == 1)
    i = np.argmin((r - r.mean()) ** 2 + (col - col.mean()) ** 2)
    c.prompts.add_point((0, r[i], col[i]), True)
    wait_idle(qtbot, c)
    return widget, images, rows


@pytest.mark.parametrize("painted", [None, 7])
def test_divisions_found_while_propagating(make_napari_viewer, trained_demo_model, qtbot,
                                           painted):
    """The default along t: a propagation finds the division of the synthetic cell (on frame 8
    with seed 0, as in the ground truth) and writes the daughters as new objects; the Tracks
    layer shows the branch; undo takes the run and its division back. A label painted by hand
    (``painted``, not an object) keeps its id: the daughters get the next ones above it."""
    widget, _, rows = clicked_dividing_cell(make_napari_viewer(), trained_demo_model, qtbot)
    assert rows.tolist() == [[1, 0, 7, 0], [2, 8, 15, 1], [3, 8, 15, 1]]
    c = widget.controller
    assert widget._divisions_check.isChecked()  # the default along t
    if painted is not None:
        c.labels_layer.data[15, 0:2, 0:2] = painted  # by hand, in a corner no cell reaches
    a, b = (2, 3) if painted is None else (painted + 1, painted + 2)
    widget._propagate_button.click()
    wait_idle(qtbot, c)

    labels = c.labels_layer.data
    assert c.objects == {1, a, b}
    assert f"object 1 divided on frame 8 into {a} and {b}" in widget._status_label.text()
    assert widget._speed_label.text().startswith("16/16 frames")  # frames again count once
    assert all((labels[t] == 1).any() for t in range(8)) and not (labels[8:] == 1).any()
    for t in range(8, 16):
        assert {a, b} <= set(np.unique(labels[t])), t
    assert c.tracks.layer.graph == {a: [1], b: [1]}
    if painted is not None:
        assert (labels[15, 0:2, 0:2] == painted).all()  # the hand-painted label is untouched
        labels[15, 0:2, 0:2] = 0

    c.undo()
    assert c.objects == {1} and not labels[1:].any()  # the click on frame 0 stays
    session = c.sessions.get(c.image_layer, c.current_ref(), create=False)
    assert session.obj_ids == [1] and session.lineage.parents() == {}
    assert c.tracks.layer.graph == {} and c.tracks.layer.data[:, :2].tolist() == [[1, 0]]


def test_deleting_a_daughter(divided):
    viewer, widget, c, centres, (parent, d1, d2) = divided
    c.delete_objects([d1])
    assert c.tracks.layer.graph == {d2: [parent]}
    record = c.labels_layer.metadata["napari_sam2"]["lineage"]["tracks"]
    assert [(t["id"], t["parent"]) for t in record] == [(parent, None), (d2, parent)]


def test_tracks_of_a_4d_stack_follow_the_writer(make_napari_viewer):
    """(t, z, y, x) labels tracked along t at z = 2: the Tracks layer has (t, z, y, x) points
    at that z, made and updated from what ``LabelsWriter`` pastes (no model needed)."""
    from napari_sam2._napari._layers import LabelsWriter, UndoGroup
    from napari_sam2._napari._stack import StackRef
    from napari_sam2._napari._tracks import TracksView

    viewer = make_napari_viewer()
    labels = viewer.add_labels(np.zeros((3, 4, 16, 16), np.int32), name="l",
                               scale=(1, 2, 0.5, 0.5))
    view = TracksView(viewer, lambda: {2: 1})
    writer = LabelsWriter()
    writer.listeners.append(view.mark)
    ref = StackRef(4, 0, ((1, 2),))
    view.attach(labels, ref)
    assert view.layer is None  # nothing to show yet
    group = UndoGroup("test", target=labels)
    mask = np.zeros((16, 16), bool)
    mask[2:4, 2:4] = True
    writer.paste(group, ref.plane_key(0), 1, mask)
    writer.paste(group, ref.plane_key(1), 2, mask)
    writer.paste(group, StackRef(4, 0, ((1, 3),)).plane_key(1), 5, mask)  # another z: not ours
    writer.undo_stack.push(group)
    assert view.flush(force=True)
    assert view.layer.data.tolist() == [[1, 0, 2, 2.5, 2.5], [2, 1, 2, 2.5, 2.5]]
    assert view.layer.graph == {2: [1]} and tuple(view.layer.scale) == (1, 2, 0.5, 0.5)
    writer.undo()
    assert view.flush(force=True) and view.layer is None  # empty again: the layer went
    assert [layer.name for layer in viewer.layers] == ["l"]
