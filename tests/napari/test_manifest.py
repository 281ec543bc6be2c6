"""The npe2 manifest validates and contributes what issue 4 asks for; the sample data."""

import subprocess
import sys
from pathlib import Path

import numpy as np


def test_manifest_validates_with_imports():
    npe2 = Path(sys.executable).with_name("npe2")
    result = subprocess.run(
        [str(npe2), "validate", "napari-sam2", "--imports"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "valid" in result.stdout, result.stdout + result.stderr


def test_manifest_contributions():
    import npe2

    pm = npe2.PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("napari-sam2")
    c = manifest.contributions
    assert [w.display_name for w in c.widgets] == ["SAM 2"]
    assert {s.key for s in c.sample_data} == {"cells", "ellipsoids"}
    exts = {e for w in c.writers for e in w.filename_extensions}
    assert {".zarr", ".tif"} <= exts
    assert all(w.layer_types == ["labels"] for w in c.writers)
    patterns = {p for r in c.readers for p in r.filename_patterns}
    assert "*.zarr" in patterns and c.readers[0].accepts_directories


def test_sample_data_is_16_bit_and_offline():
    from napari_sam2._napari._sample_data import cell_timelapse, ellipsoid_volume

    (cells, meta, kind), = cell_timelapse()
    assert kind == "image" and cells.dtype == np.uint16 and cells.ndim == 3
    assert meta["axis_labels"] == ("t", "y", "x") and cells.shape[0] >= 16
    lo, hi = meta["contrast_limits"]
    assert 0 < lo < hi < 65535 and hi > 255  # a real 16-bit range, not squashed to 8 bits
    # cells move: frames differ far beyond the noise
    assert np.abs(cells[0].astype(float) - cells[-1]).mean() > 50
    (vol, meta, kind), = ellipsoid_volume()
    assert vol.dtype == np.uint16 and vol.ndim == 3 and meta["axis_labels"] == ("z", "y", "x")
    assert meta["scale"][0] > meta["scale"][1]
