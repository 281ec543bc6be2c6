"""The README's main command runs headless end to end (no display, no network), with the shipped
weights, and its masks are the clicked cells; without the weights it refuses to run."""

import argparse
import os
import subprocess
import sys

import numpy as np
import pytest


def _iou(a, b):
    return np.logical_and(a, b).sum() / max(np.logical_or(a, b).sum(), 1)


def test_demo_runs_headless_end_to_end(tmp_path):
    from napari_sam2.data.synthetic import make_cell_timelapse
    from napari_sam2.io import read_labels_tiff, read_labels_zarr

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "QT_QPA_PLATFORM")}
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "napari_sam2.demo", "--headless", "--frames", "4", "--cells", "2",
           "--out", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    assert "model: sam2_demo (shipped weights) loaded" in log
    assert "clicked 2 cells on frame 0" in log and "propagated 4 frames" in log
    assert log.count("reopened identical") == 2
    zarr_labels = read_labels_zarr(out / "labels.zarr")[0]
    tiff_labels = read_labels_tiff(out / "labels.tif")[0]
    assert zarr_labels.shape == (4, 192, 256)
    np.testing.assert_array_equal(zarr_labels, tiff_labels)
    assert set(np.unique(zarr_labels)) == {0, 1, 2}
    # objects 1 and 2 are the first two cells of frame 0 (the demo clicks them in that order):
    # each is that cell on every frame (IoU 0.94-0.96 with the weights of 2026-12-03)
    _, truth = make_cell_timelapse(n_frames=4, seed=0)
    cells = [int(v) for v in np.unique(truth[0]) if v > 0][:2]
    for obj, cell in zip((1, 2), cells):
        for t in range(4):
            assert _iou(zarr_labels[t] == obj, truth[t] == cell) > 0.85, (obj, t)


def _args(tmp_path, **kw):
    parser = argparse.ArgumentParser()
    from napari_sam2 import demo

    demo.add_arguments(parser)
    args = parser.parse_args(["--headless", "--out", str(tmp_path / "out")])
    for k, v in kw.items():
        setattr(args, k, v)
    return args


def test_demo_without_the_shipped_weights_fails_with_one_line(tmp_path, monkeypatch):
    from napari_sam2 import demo
    from napari_sam2.model import loading

    gone = tmp_path / "sam2_demo.safetensors"
    monkeypatch.setattr(loading, "shipped_weights_path", lambda name: gone)
    with pytest.raises(FileNotFoundError) as info:
        demo.run(_args(tmp_path))
    message = str(info.value)
    assert "missing from this installation" in message and str(gone) in message
    assert "\n" not in message
    assert not (tmp_path / "out").exists()  # refused before any work


def test_demo_with_a_damaged_checkpoint_fails_before_any_work(tmp_path):
    from napari_sam2 import demo
    from napari_sam2.errors import DamagedFileError

    bad = tmp_path / "weights.pt"
    bad.write_bytes(b"")
    with pytest.raises(DamagedFileError, match="weights.pt"):
        demo.run(_args(tmp_path, checkpoint=str(bad)))
    assert not (tmp_path / "out").exists()


def test_cli_has_the_demo_subcommand():
    from napari_sam2 import cli, demo

    assert cli.SUBCOMMANDS["demo"] == "napari_sam2.demo"
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    args = parser.parse_args(["--headless", "--frames", "3"])
    assert args.headless and args.frames == 3 and args.model == "sam2_demo"


def test_the_demo_command_imports_neither_qt_nor_napari():
    """Only ``_napari`` imports Qt and napari: the command loads them only to play the session."""
    code = ("import sys\n"
            "import napari_sam2.demo\n"
            "bad = [m for m in ('napari', 'qtpy', 'PyQt6', 'PyQt5') if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
