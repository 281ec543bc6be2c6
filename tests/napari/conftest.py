"""Fixtures for the viewer tests: the small sam2_demo model and a docked widget."""

import numpy as np
import pytest


@pytest.fixture(scope="session")
def demo_model():
    """sam2_demo with seeded random weights, for the plumbing tests (fast, and independent of
    the shipped weights). Seed 0 gives non-empty masks for a click on the bright square
    (checked where pixels matter), so pasting and undo act on real, non-trivial outputs."""
    import torch

    from napari_sam2.model import build_model

    torch.manual_seed(0)
    model = build_model("sam2_demo", device="cpu")
    model.trained = False
    return model


@pytest.fixture(scope="session")
def trained_demo_model():
    """The shipped, trained sam2_demo (tests using it fail, never skip, if it is missing)."""
    from napari_sam2.model import load_model

    model = load_model("sam2_demo", device="cpu", progress=False)
    model.trained = True
    return model


def square_stack(n_frames=6, shape=(48, 72), dtype=np.uint16):
    """A bright square moving right by 2 px per frame on a dim noisy background, (T, H, W)."""
    rng = np.random.default_rng(0)
    img = rng.normal(500, 30, (n_frames, *shape)).clip(0).astype(dtype)
    for t in range(n_frames):
        img[t, 14:34, 20 + 2 * t : 44 + 2 * t] = 3000
    return img


@pytest.fixture
def sam(make_napari_viewer, demo_model, qtbot):
    """(viewer, widget, controller) on a non-square (6, 48, 72) uint16 stack with scale and
    translate, labels layer created, model set, prefetch finished."""
    return docked(make_napari_viewer, square_stack(), demo_model, qtbot)


def docked(make_napari_viewer, image, model, qtbot):
    """``sam``'s (viewer, widget, controller) on ``image`` (T, H, W) with ``model``."""
    viewer = make_napari_viewer(show=True)
    viewer.add_image(
        image, name="img", scale=(1.0, 0.5, 2.0), translate=(3.0, 10.0, -5.0),
        contrast_limits=(400, 3200), axis_labels=("t", "y", "x"),
    )
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2")
    c = widget.controller
    c.set_model(model, "sam2_demo")
    c.set_labels_layer(None)
    c.go_to_frame(0)
    qtbot.waitUntil(lambda: not c.prefetcher.busy, timeout=60_000)
    return viewer, widget, c


def wait_idle(qtbot, c, timeout=60_000):
    qtbot.waitUntil(lambda: not c.jobs.busy and not c.propagating, timeout=timeout)


def assert_same_mask(actual, expected, max_fraction=0.002):
    """Masks equal up to a few pixels at the logit threshold: ``session.result(t)`` may
    rebuild a frame's mask from its stored low-res logits, while propagation streamed the
    full-resolution one."""
    actual, expected = np.asarray(actual, bool), np.asarray(expected, bool)
    assert actual.shape == expected.shape
    wrong = np.count_nonzero(actual != expected)
    assert wrong <= max_fraction * actual.size, f"{wrong} of {actual.size} pixels differ"


def iou(a, b) -> float:
    """Intersection over union of two boolean masks (1 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def clicked_cell_viewer(viewer, qtbot, model, *, n_frames, seed, **geometry):
    """A synthetic cell time-lapse in ``viewer`` with the widget docked, ``model`` set, and one
    click at the centre of the largest cell of frame 0 (mask written).

    Returns:
        (widget, images (T,H,W), cell (T,H,W) bool: the clicked cell's true mask,
        point (row, col) clicked, (lo, hi) contrast limits).
    """
    from napari_sam2.data.synthetic import make_cell_timelapse

    images, truth = make_cell_timelapse(n_frames=n_frames, seed=seed)
    lo, hi = (float(v) for v in np.percentile(images, (0.5, 99.8)))
    viewer.add_image(images, name="cells", axis_labels=("t", "y", "x"), contrast_limits=(lo, hi),
                     **geometry)
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2")
    c = widget.controller
    c.set_model(model, "sam2_demo")
    c.set_labels_layer(None)
    c.go_to_frame(0)
    cell = int(np.bincount(truth[0].ravel())[1:].argmax()) + 1  # the largest cell
    rows, cols = np.nonzero(truth[0] == cell)
    i = np.argmin((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2)
    point = (rows[i], cols[i])
    c.prompts.add_point((0, *point), True)
    wait_idle(qtbot, c)
    return widget, images, truth == cell, point, (lo, hi)
