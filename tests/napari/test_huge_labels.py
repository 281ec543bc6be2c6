"""Labels of huge images (issue 19): chunked zarr labels, region pastes, streamed saving.

The pastes into a chunked array with crops (``PlacedMask``) must give exactly what the
whole-frame pastes into numpy give (the rules of ``_layers.py``), while reading only boxes.
"""

import numpy as np
import pytest
import zarr

from napari_sam2._napari._big_labels import (
    LABELS_IN_MEMORY_BYTES,
    CoarseLevel,
    chunked_labels,
    label_box,
    max_label,
    needs_chunked,
    new_labels,
    plane_centroids,
)
from napari_sam2._napari._layers import LabelsWriter, UndoGroup, label_planes, next_free_label
from napari_sam2._napari._placed import PlacedMask
from napari_sam2._napari._replay import LabelsArray
from napari_sam2._napari._tracks import plane_centroids as numpy_centroids


def _blob(rng, shape, centre, radius):
    yy, xx = np.ogrid[:shape[0], :shape[1]]
    noise = rng.random(shape) < 0.1
    return ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < radius ** 2) ^ noise


def _crop(mask, pad=3):
    """``mask`` as the engine gives a windowed one: a crop around it, placed."""
    rows, cols = np.nonzero(mask)
    r0, c0 = max(0, rows.min() - pad), max(0, cols.min() - pad)
    r1, c1 = min(mask.shape[0], rows.max() + pad), min(mask.shape[1], cols.max() + pad)
    return PlacedMask(int(r0), int(c0), mask[r0:r1, c0:c1], mask.shape)


def test_thresholds_and_new_labels():
    assert not needs_chunked((2048, 2048, 8)) and needs_chunked((20000, 20000))
    assert needs_chunked((LABELS_IN_MEMORY_BYTES // 4 + 1,))
    small = new_labels((4, 64, 64))
    assert isinstance(small, np.ndarray) and small.dtype == np.int32 and not small.any()
    stack = new_labels((40, 2048, 2048))  # 640 MiB, planes of normal size: single-scale
    assert isinstance(stack, zarr.Array) and stack.chunks == (1, 1024, 1024)
    huge = new_labels((3, 20000, 20000))  # planes too large to draw whole: display levels
    assert isinstance(huge[0], zarr.Array) and huge[0].chunks == (1, 1024, 1024)
    assert [level.shape for level in huge[1:]] == [(3, 5000, 5000), (3, 1250, 1250)]
    levels = new_labels((3, 20000, 20000), [(3, 20000, 20000), (3, 5000, 5000)])
    assert levels[0].shape == (3, 20000, 20000) and isinstance(levels[1], CoarseLevel)
    assert levels[1].shape == (3, 5000, 5000)


def test_region_pastes_into_chunked_labels_equal_whole_frame_pastes():
    """Clicks, corrections, another object, a manual edit, overwrite, erase and undo: the
    chunked array with crops ends equal to numpy with whole-frame masks at every step."""
    rng = np.random.default_rng(0)
    shape = (2, 3000, 2600)
    plain, chunked = np.zeros(shape, np.int32), chunked_labels(shape)
    plain[1, 1500:1530, 1000:1040] = chunked[1, 1500:1530, 1000:1040] = 9  # painted by hand
    targets = [LabelsArray(plain), LabelsArray(chunked)]
    writers = [LabelsWriter(), LabelsWriter()]
    key = (1, slice(None), slice(None))
    steps = [
        (1, _blob(rng, shape[1:], (1510, 1010), 25), False),   # over the hand-painted pixels
        (2, _blob(rng, shape[1:], (1540, 1060), 20), False),   # a neighbour
        (1, _blob(rng, shape[1:], (1520, 1030), 30), False),   # correction of object 1
        (1, _blob(rng, shape[1:], (2900, 2500), 12), False),   # jumps across chunks
        (2, _blob(rng, shape[1:], (1530, 1050), 22), True),    # overwrite on
        (1, np.zeros(shape[1:], bool), False),                 # cleared
    ]
    for label, mask, overwrite in steps:
        for target, writer, m in zip(targets, writers, (mask, _crop(mask) if mask.any()
                                                        else PlacedMask.empty(shape[1:]))):
            group = UndoGroup("step", target=target)
            writer.paste(group, key, label, m, overwrite=overwrite)
            writer.undo_stack.push(group)
        assert np.array_equal(plain, chunked[:]), label
    for target, writer in zip(targets, writers):
        group = UndoGroup("delete", target=target)
        writer.erase(group, 2)
        writer.undo_stack.push(group)
    assert np.array_equal(plain, chunked[:]) and not (plain == 2).any()
    for _ in range(4):
        restored = [w.undo()[1] for w in writers]
        assert restored[0] == restored[1] and np.array_equal(plain, chunked[:])
    assert (plain == 9).any()  # the hand-painted pixels the masks did not take are still there
    assert label_planes(chunked, 9) == label_planes(plain, 9) == [key]


def test_chunked_helpers_read_stored_chunks_like_numpy():
    shape = (3, 5000, 6000)
    plain, chunked = np.zeros(shape, np.int32), chunked_labels(shape)
    for arr in (plain, chunked):
        arr[1, 2000:2010, 3000:3005] = 4
        arr[1, 1020:1030, 5990:6000] = 2  # across a chunk border
        arr[2, 0:3, 0:3] = 7
    key = (1, slice(None), slice(None))
    assert label_box(chunked, key, 4) == label_box(plain, key, 4) == (2000, 3000, 2010, 3005)
    assert label_box(chunked, key, 7) is None
    assert max_label(chunked) == 7 and next_free_label(chunked, [9]) == 10
    got, want = plane_centroids(chunked, key), numpy_centroids(plain[1])
    assert got.keys() == want.keys()
    assert all(np.allclose(got[k], want[k]) for k in want)
    level = CoarseLevel(chunked, (3, 1250, 1500))
    assert np.array_equal(level[1], plain[1, ::4, ::4])
    assert np.array_equal(level[:, 250:520, 740:760], plain[:, 1000:2080:4, 2960:3040:4])
    assert np.array_equal(np.asarray(level), plain[:, ::4, ::4])
    assert np.array_equal(level[1, 240:520:3, 700:1500:2],
                          plain[1, ::4, ::4][240:520:3, 700:1500:2])


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))


class PeakRss:
    """Peak resident memory above the start of the block, bytes (Linux ``/proc/self``).

    Not tracemalloc: ``tracemalloc.stop()`` while other threads allocate crashed CPython 3.11
    here (a segfault in the full suite while the widget's workers ran), and this measures torch's
    buffers too."""

    def __enter__(self) -> "PeakRss":
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # the kernel's high-water mark restarts at the current RSS
        self.start = _status_kib("VmRSS")
        return self

    def __exit__(self, *exc) -> None:
        self.peak = (_status_kib("VmHWM") - self.start) * 1024


def test_ome_zarr_save_streams_chunked_labels(tmp_path):
    """A 20000 x 20000 x 2 chunked array (3.2 GB as numpy) is saved chunk by chunk: only its
    stored chunks are read and written, and it reads back equal."""
    from napari_sam2._napari._writer import write_tiff, write_zarr

    labels = chunked_labels((2, 20000, 20000))
    labels[0, 100:140, 19000:19050] = 3
    labels[1, 15000:15300, 200:260] = 5
    with PeakRss() as rss:
        written = write_zarr(str(tmp_path / "huge.zarr"),
                             [labels, CoarseLevel(labels, (2, 5000, 5000))],
                             {"name": "cells", "multiscale": True})
    assert rss.peak < 128 * 2**20, rss.peak  # a few chunks, never a plane (1.6 GB)
    back = zarr.open_array(f"{written[0]}/0", mode="r")
    assert back.shape == labels.shape and back.dtype == labels.dtype
    assert np.array_equal(back[0, 0:1024, 18432:19456], labels[0, 0:1024, 18432:19456])
    assert np.array_equal(back[1, 14336:16384, 0:1024], labels[1, 14336:16384, 0:1024])
    assert back.nchunks_initialized == labels.nchunks_initialized == 2
    with pytest.raises(ValueError, match="save them as OME-Zarr"):
        write_tiff(str(tmp_path / "huge.tif"), labels, {"name": "cells"})
    assert not (tmp_path / "huge_labels.tif").exists()


# ---------------------------------------------------------------------- in the widget
class _Background:
    """A coarse display level of the huge field: its background level only (rendering the
    whole 20000 px field to show it zoomed out would take minutes; SAM's windows are read
    from level 0, at native pixels)."""

    dtype, ndim = np.dtype(np.uint16), 3

    def __init__(self, shape):
        self.shape = tuple(shape)
        self.size = int(np.prod(self.shape))

    def __getitem__(self, key):
        return np.full(_indexed_shape(self.shape, key), 600, np.uint16)

    def __array__(self, dtype=None, copy=None):
        return self[:]


def _indexed_shape(shape, key):
    key = key if isinstance(key, tuple) else (key,)
    key = key + (slice(None),) * (len(shape) - len(key))
    return tuple(len(range(*k.indices(n))) for k, n in zip(key, shape) if isinstance(k, slice))


def _huge_viewer(make_napari_viewer, model, qtbot, size, n_frames, labels=True):
    import dask.array as da

    from napari_sam2.data import LargeFieldTimelapse

    field = LargeFieldTimelapse(shape=(size, size), n_frames=n_frames, seed=1, cache_tiles=16)
    lazy = da.from_array(field, chunks=(1, 512, 512), asarray=True)
    levels = [lazy] + [_Background((n_frames, size // f, size // f)) for f in (8, 32)]
    viewer = make_napari_viewer()
    viewer.add_image(levels, multiscale=True, name="field", contrast_limits=(300, 6000))
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2")
    c = widget.controller
    c.set_model(model, "sam2_demo")
    c.set_window("auto")
    if labels:
        c.set_labels_layer(None)
    c.go_to_frame(0)
    qtbot.waitUntil(lambda: not c.prefetcher.busy, timeout=60_000)
    return viewer, c, field


def _click(c, qtbot, field, k, frame=0):
    from napari_sam2.training.evaluate import interior_point

    from tests.napari.conftest import wait_idle

    box, gt = field.cell_mask(frame, k)
    r, col = interior_point(gt)
    c.prompts.add_point((frame, r + box[0], col + box[1]), True)
    wait_idle(qtbot, c)


def _cell_iou(labels, field, t, k, obj):
    from tests.napari.conftest import iou

    box, gt = field.cell_mask(t, k)
    pad = 64
    r0, c0 = max(0, box[0] - pad), max(0, box[1] - pad)
    region = (t, slice(r0, box[2] + pad), slice(c0, box[3] + pad))
    truth = field.labels_region(t, region[1], region[2]) == k
    return iou(np.asarray(labels[region]) == obj, truth)


def _widget_run(make_napari_viewer, model, qtbot, tmp_path, size, n_frames):
    """Click, a second object, a manual edit, propagate, measure, undo, delete, save."""
    from tests.napari.conftest import wait_idle

    viewer, c, field = _huge_viewer(make_napari_viewer, model, qtbot, size, n_frames)
    layer = c.labels_layer
    assert layer.multiscale and isinstance(layer.data[0], zarr.Array)
    labels = layer.data[0]
    assert labels.shape == (n_frames, size, size) and labels.nchunks_initialized == 0
    labels[0, 10:20, 10:30] = 77  # a manual edit (napari paints only single-scale labels)
    k, other = field.n_cells // 2, field.n_cells // 3
    c.select_object(2)
    _click(c, qtbot, field, other)
    assert _cell_iou(labels, field, 0, other, 2) > 0.7
    c.select_object(3)  # a box
    third = field.n_cells // 4
    (r0, c0, r1, c1), _ = field.cell_mask(0, third)
    c.prompts.boxes.add_rectangles(np.array([[0, r0, c0], [0, r0, c1], [0, r1, c1], [0, r1, c0]],
                                            float))
    wait_idle(qtbot, c)
    assert _cell_iou(labels, field, 0, third, 3) > 0.7
    c.select_object(1)
    with PeakRss() as rss:
        _click(c, qtbot, field, k)
        assert _cell_iou(labels, field, 0, k, 1) > 0.8
        _click(c, qtbot, field, k)  # a second click on it: a correction, pasted over the first
        assert _cell_iou(labels, field, 0, k, 1) > 0.8
        c.propagate("forward", obj_ids=[1])
        wait_idle(qtbot, c)
    peak = rss.peak
    frame_int32 = size * size * 4
    assert peak < frame_int32 / 4, (peak, frame_int32)
    print(f"peak {peak / 2**20:.1f} MiB, one int32 frame {frame_int32 / 2**20:.0f} MiB; "
          f"ious", [round(_cell_iou(labels, field, t, k, 1), 3) for t in range(n_frames)],
          "chunks", labels.nchunks_initialized)
    for t in range(1, n_frames):
        assert _cell_iou(labels, field, t, k, 1) > 0.7, t
    assert (labels[0, 10:20, 10:30] == 77).all() and _cell_iou(labels, field, 0, other, 2) > 0.7
    assert _cell_iou(labels, field, 0, third, 3) > 0.7
    shown = np.asarray(layer.data[1][0])  # the coarse level napari shows follows level 0
    assert shown.shape == (size // 8, size // 8) and np.array_equal(
        shown, np.asarray(labels[0, ::8, ::8]))
    assert c.tracks.extents()[1] == (0, n_frames - 1)
    # undo the propagation: frames 1.. lose object 1, frame 0 and the rest stay
    c.undo()
    assert all(label_box(labels, (t, slice(None), slice(None)), 1) is None
               for t in range(1, n_frames))
    assert _cell_iou(labels, field, 0, k, 1) > 0.8 and (labels[0, 10:20, 10:30] == 77).all()
    c.delete_objects([2])
    assert label_box(labels, (0, slice(None), slice(None)), 2) is None
    assert next_free_label(labels, c.objects) == 78
    # saving: OME-Zarr through napari's writer, read back equal where written
    path = tmp_path / "huge_labels.zarr"
    viewer.layers.selection = {layer}
    saved = viewer.layers.save(str(path), selected=True, plugin="napari-sam2")
    back = zarr.open_array(f"{saved[0]}/0", mode="r")
    assert back.shape == labels.shape
    box = label_box(labels, (0, slice(None), slice(None)), 1)
    region = (0, slice(box[0], box[2]), slice(box[1], box[3]))
    assert np.array_equal(back[region], labels[region]) and (back[region] == 1).any()
    assert np.array_equal(back[0, 10:20, 10:30], labels[0, 10:20, 10:30])
    assert back.nchunks_initialized == labels.nchunks_initialized
    # reopening with the image in a new viewer: the saved labels come back chunked (only the
    # stored chunks are read, into memory), multiscale, and their session is rebuilt
    written = [(key, np.asarray(labels[key]))
               for key in (region, (0, slice(10, 20), slice(10, 30)))]
    viewer, c, _ = _huge_viewer(make_napari_viewer, model, qtbot, size, n_frames, labels=False)
    with PeakRss() as rss:
        opened = [la for la in viewer.open(str(saved[0]), plugin="napari-sam2")
                  if la._type_string == "labels"][0]
        qtbot.waitUntil(lambda: c.restored is not None and not c.restoring, timeout=60_000)
        wait_idle(qtbot, c)
    reopen_peak = rss.peak
    assert reopen_peak < frame_int32 / 4, reopen_peak
    assert opened.multiscale and isinstance(opened.data[0], zarr.Array)
    assert opened.data[0].store is not labels.store and c.labels_layer == opened
    for key, values in written:
        assert np.array_equal(opened.data[0][key], values)
    assert {1, 3} <= c.objects and 2 not in c.objects
    assert c.painter.planes_with(1)  # SAM owns its pixels again: corrections replace them
    c.select_object(1)
    _click(c, qtbot, field, k)
    assert _cell_iou(opened.data[0], field, 0, k, 1) > 0.8
    print(f"reopened and rebuilt: peak extra RSS {reopen_peak / 2**20:.1f} MiB")
    return peak


def test_huge_lazy_image_in_the_widget(make_napari_viewer, trained_demo_model, qtbot,
                                       tmp_path):
    """A 20000 x 20000 x 3 lazy image: chunked multiscale labels, a windowed click and a
    2-frame propagation at the right place, far below one frame's memory, undo, delete,
    OME-Zarr saving."""
    _widget_run(make_napari_viewer, trained_demo_model, qtbot, tmp_path, 20000, 3)


@pytest.mark.slow
def test_50000_px_lazy_image_in_the_widget(make_napari_viewer, trained_demo_model, qtbot,
                                           tmp_path):
    """The same on the issue's 50000 x 50000 image (one int32 frame: 9.3 GiB)."""
    _widget_run(make_napari_viewer, trained_demo_model, qtbot, tmp_path, 50000, 3)


def test_long_stack_gets_single_scale_chunked_labels_napari_paints(
        make_napari_viewer, trained_demo_model, qtbot):
    """A single-scale lazy stack whose labels pass the threshold (2048 x 2048 x 40: 640 MiB
    as int32) gets single-scale chunked labels: napari paints into them, a click does not
    take the painted pixels, undo leaves them."""
    import dask.array as da

    from napari_sam2.data import LargeFieldTimelapse

    field = LargeFieldTimelapse(shape=(2048, 2048), n_frames=40, seed=1)
    viewer = make_napari_viewer()
    viewer.add_image(da.from_array(field, chunks=(1, 512, 512), asarray=True), name="field",
                     contrast_limits=(300, 6000))
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2")
    c = widget.controller
    c.set_model(trained_demo_model, "sam2_demo")
    c.set_window("auto")
    c.set_labels_layer(None)
    layer = c.labels_layer
    assert not layer.multiscale and isinstance(layer.data, zarr.Array)
    k = field.n_cells // 2
    box, _ = field.cell_mask(0, k)
    layer.brush_size = 5
    layer.paint((0, box[0] + 2, box[1] + 2), 40)  # napari's own brush, next to the cell
    painted = np.asarray(layer.data[0]) == 40
    assert painted.any()
    c.select_object(1)
    _click(c, qtbot, field, k)
    assert _cell_iou(layer.data, field, 0, k, 1) > 0.8
    assert np.array_equal(np.asarray(layer.data[0]) == 40, painted)
    c.undo()
    assert not (np.asarray(layer.data[0]) == 1).any()
    assert np.array_equal(np.asarray(layer.data[0]) == 40, painted)


def test_whole_frame_actions_are_refused_on_huge_frames(make_napari_viewer, demo_model, qtbot):
    """What needs whole-frame masks says so in one line and writes nothing: a click with the
    window setting on "whole frame", painted masks as prompts, divisions, track export."""
    from tests.napari.conftest import wait_idle

    viewer, c, field = _huge_viewer(make_napari_viewer, demo_model, qtbot, 20000, 2)
    said = []
    c.status.connect(said.append)
    c.set_window(None)
    assert not c.default_detect_divisions()
    _click(c, qtbot, field, 1)
    wait_idle(qtbot, c)
    assert "whole-frame masks" in said[-1] and "20000 x 20000" in said[-1]
    assert c.labels_layer.data[0].nchunks_initialized == 0
    for action in (c.mask_as_prompt, c.mark_division,
                   lambda: c.propagate("forward", divisions=True),
                   lambda: c.export_tracks("unused.csv")):
        said.clear()
        action()
        assert "whole-frame masks" in said[-1], action
    assert c.labels_layer.data[0].nchunks_initialized == 0
