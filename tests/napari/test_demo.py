"""The README's main command runs headless end to end (no display, no network)."""

import os
import subprocess
import sys

import numpy as np


def test_demo_runs_headless_end_to_end(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "QT_QPA_PLATFORM")}
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "napari_sam2.demo", "--headless", "--frames", "4", "--cells", "2",
           "--out", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    assert "clicked 2 cells on frame 0" in log and "propagated 4 frames" in log
    assert log.count("reopened identical") == 2
    from napari_sam2.io import read_labels_tiff, read_labels_zarr

    zarr_labels = read_labels_zarr(out / "labels.zarr")[0]
    tiff_labels = read_labels_tiff(out / "labels.tif")[0]
    assert zarr_labels.shape == (4, 192, 256)
    np.testing.assert_array_equal(zarr_labels, tiff_labels)
    assert set(np.unique(zarr_labels)) <= {0, 1, 2}


def test_cli_has_the_demo_subcommand():
    from napari_sam2 import cli, demo

    assert cli.SUBCOMMANDS["demo"] == "napari_sam2.demo"
    import argparse

    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    args = parser.parse_args(["--headless", "--frames", "3"])
    assert args.headless and args.frames == 3 and args.model == "sam2_demo"
