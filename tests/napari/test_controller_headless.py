"""The controller's click and propagation jobs without a viewer, Qt or napari.

``Segmenter`` and ``Tracker`` get their collaborators explicitly; with ``run_now`` as the worker
factory their jobs (the click's function, the propagation's generator) run synchronously in the
test's thread, with the shipped sam2_demo model on real numpy arrays.
"""

import subprocess
import sys

import numpy as np

from napari_sam2._napari._clicks import Segmenter
from napari_sam2._napari._layers import LabelsWriter
from napari_sam2._napari._messages import Feedback
from napari_sam2._napari._sessions import SessionStore
from napari_sam2._napari._stack import stack_ref
from napari_sam2._napari._tracking import Tracker
from napari_sam2._napari._workers import JobQueue, run_now
from tests.napari.conftest import assert_same_mask, iou


class ImageArray:
    """What the session store reads from an image: the array and the contrast limits."""

    def __init__(self, data, contrast_limits):
        self.data, self.contrast_limits, self.name = data, contrast_limits, "cells"


class LabelsArray:
    """A Labels target: an array SAM writes into, and ``refresh()`` (counted)."""

    def __init__(self, shape):
        self.data, self.name, self.refreshed = np.zeros(shape, np.int32), "labels", 0

    def refresh(self):
        self.refreshed += 1


def _parts(model, log):
    sessions = SessionStore()
    sessions.set_model(model)
    jobs = JobQueue(run_now)
    writer = LabelsWriter()
    feedback = Feedback(say=log["say"].append, error=log["error"].append,
                        progress=lambda *p: log["progress"].append(p),
                        written=lambda: log["written"].append(True))
    return (Segmenter(jobs, sessions, writer, feedback), Tracker(jobs, sessions, writer, feedback),
            jobs, sessions, writer)


def _centre(mask):
    rows, cols = np.nonzero(mask)
    i = np.argmin((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2)
    return rows[i], cols[i]


def test_click_and_propagate_without_a_viewer(trained_demo_model):
    from napari_sam2.data.synthetic import make_cell_timelapse
    from napari_sam2.engine import TrackingSession

    images, truth = make_cell_timelapse(n_frames=6, seed=3)
    lo, hi = (float(v) for v in np.percentile(images, (0.5, 99.8)))
    image, labels = ImageArray(images, (lo, hi)), LabelsArray(images.shape)
    log = {"say": [], "error": [], "progress": [], "written": []}
    clicks, tracker, jobs, sessions, writer = _parts(trained_demo_model, log)
    cells = [int(v) for v in np.bincount(truth[0].ravel())[1:].argsort()[::-1][:2] + 1]
    ref = stack_ref(images.shape, 0, (0, 0, 0))
    points = {}
    for obj, cell in enumerate(cells, start=1):
        points[obj] = _centre(truth[0] == cell)
        clicks.segment(image, labels, ref, 0, obj, [points[obj]], [1])
        assert not jobs.busy  # the job ran to the end in this thread
        assert iou(labels.data[0] == obj, truth[0] == cell) > 0.85, obj
    assert log["say"][-1].startswith("object 2:") and log["error"] == []
    assert labels.data[1:].max() == 0  # only the clicked frame was written

    assert tracker.propagate(image, labels, ref, start=0, n_frames=6)
    assert not tracker.propagating and tracker.run is None
    assert [p[0] for p in log["progress"]] == [1, 2, 3, 4, 5, 6]
    assert log["say"][-1].startswith("propagated 6 frames") and log["error"] == []
    # every object on every frame, each one (the second leaves the field on frames 1-4: its
    # label must be absent there, and it is found again on frame 5)
    assert not (truth[1:5] == cells[1]).any() and (truth[5] == cells[1]).any()
    for obj, cell in enumerate(cells, start=1):
        for t in range(6):
            assert iou(labels.data[t] == obj, truth[t] == cell) > 0.85, (obj, t)
    # exactly what the engine gives for the same clicks
    reference = TrackingSession(trained_demo_model, images, intensity_range=(lo, hi))
    for obj in points:
        reference.add_points(0, obj, [points[obj]], [1])
    for result in reference.propagate(0):
        for obj in points:
            assert_same_mask(labels.data[result.frame] == obj, result.mask_of(obj))
    assert sessions.get(image, ref, create=False).frames_with_output(2) == list(range(6))

    group, restored = writer.undo()  # the run is one undoable step; the clicks stay
    assert group.description == "propagate from frame 0" and restored > 0
    assert labels.data[1:].max() == 0 and (labels.data[0] == 1).any()


def test_a_failing_job_reports_one_line_and_the_queue_goes_on(trained_demo_model):
    from napari_sam2.data.synthetic import make_cell_timelapse

    images, truth = make_cell_timelapse(n_frames=3, seed=1)
    image = ImageArray(images, (float(images.min()), float(images.max())))
    labels = LabelsArray(images.shape)
    log = {"say": [], "error": [], "progress": [], "written": []}
    clicks, tracker, jobs, _, _ = _parts(trained_demo_model, log)
    ref = stack_ref(images.shape, 0, (0, 0, 0))
    assert not tracker.propagate(image, labels, ref, start=0, n_frames=3)
    assert log["error"] == ["nothing to propagate: click on an object (or use a painted mask) "
                            "first"]
    clicks.segment(image, labels, ref, 0, 1, [(5, 5)], [1, 1])  # two labels for one point
    assert log["error"][1:] == ["got 1 points but labels of shape (2,): pass one label per point"]
    assert labels.data.max() == 0 and not jobs.busy  # nothing written, the queue is free
    clicks.segment(image, labels, ref, 0, 1, [_centre(truth[0] == 1)], [1])
    assert iou(labels.data[0] == 1, truth[0] == 1) > 0.8


def test_the_jobs_import_neither_napari_nor_qt():
    code = ("import sys\n"
            "import napari_sam2._napari._clicks, napari_sam2._napari._tracking\n"
            "import napari_sam2._napari._workers, napari_sam2._napari._prefetch\n"
            "bad = [m for m in ('napari', 'qtpy', 'PyQt6', 'PyQt5') if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_a_click_whose_labels_are_gone_writes_nothing_and_says_so(trained_demo_model):
    from napari_sam2.data.synthetic import make_cell_timelapse

    images, truth = make_cell_timelapse(n_frames=2, seed=1)
    image = ImageArray(images, (float(images.min()), float(images.max())))
    labels = LabelsArray(images.shape)
    errors = []
    sessions = SessionStore()
    sessions.set_model(trained_demo_model)
    gone = Feedback(error=errors.append, exists=lambda layer: layer is not labels)
    clicks = Segmenter(JobQueue(run_now), sessions, LabelsWriter(), gone)
    ref = stack_ref(images.shape, 0, (0, 0, 0))
    clicks.segment(image, labels, ref, 0, 1, [_centre(truth[0] == 1)], [1])
    assert errors == ["the Labels layer 'labels' was removed: the mask of object 1 on frame 0 "
                      "was not written"]
    assert labels.data.max() == 0 and labels.refreshed == 0
