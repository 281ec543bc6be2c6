"""bfloat16 autocast on a CPU with native bfloat16: opt-in there, and masks that agree
with float32 (issue 17: IoU >= 0.98 per frame-object, same present/absent on >= 99 %).

Runs only where the CPU has AVX512-BF16 or AMX-BF16 (emulated bfloat16 elsewhere is slow and
not what users get). Same frames, same clicks, float32 vs bfloat16, with the shipped sam2_demo
(``benchmarks/bench_bf16.py`` measures the same and the speed, also for SAM 2.1 tiny).
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_sam2.engine import ImagePredictor, TrackingSession
from napari_sam2.engine.device import ENV_VAR, cpu_has_native_bfloat16

pytestmark = pytest.mark.skipif(
    not cpu_has_native_bfloat16(),
    reason="the CPU has no native bfloat16 (no avx512_bf16 / amx_bf16 in /proc/cpuinfo)")

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_bf16.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_bf16", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demo():
    from napari_sam2.model import load_model

    return load_model("sam2_demo", device="cpu", progress=False).eval()


def test_bfloat16_is_opt_in_on_this_cpu(demo, monkeypatch):
    """float32 by default; bfloat16=True or NAPARI_SAM2_BFLOAT16=1 turns bf16 on."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert not ImagePredictor(demo).uses_bfloat16
    assert not TrackingSession(demo, np.zeros((1, 8, 8), np.uint8)).state.uses_bfloat16
    monkeypatch.setenv(ENV_VAR, "1")
    image = np.random.default_rng(0).integers(0, 256, (64, 80), dtype=np.uint8)
    low, ref = ImagePredictor(demo), ImagePredictor(demo, bfloat16=False)
    assert low.uses_bfloat16 and not ref.uses_bfloat16
    assert ImagePredictor(demo, bfloat16=True).uses_bfloat16
    a, b = low.encode(image).image_embed, ref.encode(image).image_embed
    assert not torch.equal(a, b)  # bfloat16 rounding shows ...
    torch.testing.assert_close(a.float(), b, atol=0.1, rtol=0.05)  # ... and is small
    assert TrackingSession(demo, image[None], read_ahead=0).state.uses_bfloat16
    assert not TrackingSession(demo, image[None], bfloat16=False).state.uses_bfloat16


def test_bfloat16_masks_agree_with_float32(demo):
    from napari_sam2.data.synthetic import make_cell_timelapse

    bench = _bench()
    images, truth = make_cell_timelapse(n_frames=8, seed=3)
    q = bench.agreement(demo, images, bench.cell_clicks(truth, 3))
    assert q["n"] == 24
    assert q["iou_min"] >= 0.98, q
    assert q["same_presence"] >= 0.99, q
