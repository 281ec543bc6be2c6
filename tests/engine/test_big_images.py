"""Memory that scales with the image (issue 15).

The tiled paths (``transforms.preprocess_image`` and ``transforms.logits_to_masks``) must give
the results of the old whole-image paths bit for bit, and a click on a large image must stay
within a bound of the image's own size. The memory test reads the kernel's peak RSS of a
fresh process (``benchmarks/bench_memory.py``'s child), so numpy, torch and the allocator's
slack are all counted.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_sam2.engine import ImagePredictor
from napari_sam2.engine import transforms as T
from napari_sam2.engine.postprocess import postprocess_logits

ROOT = Path(__file__).resolve().parents[2]


def old_model_input(image, image_size, intensity_range=None) -> torch.Tensor:
    """The path before tiling: the whole image as float32, then one resize."""
    scaled = T.map_intensity(image, intensity_range)
    t = torch.from_numpy(np.ascontiguousarray(scaled, dtype=np.float32))
    t = t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None]
    t = T.resize_to_model(t, image_size)
    if t.shape[1] == 1:
        t = t.expand(-1, 3, -1, -1)
    return T.normalize_imagenet(t).contiguous()


def old_masks(logits: torch.Tensor, hw) -> np.ndarray:
    """(M, h, w) -> (M, H, W) bool the old way: full-resolution float32, then > 0."""
    return (T.upsample_logits(logits[None].float(), hw)[0] > 0).numpy()


# ----------------------------------------------------------------------------- encode
@pytest.mark.parametrize(
    "shape, dtype, size, intensity_range, block_bytes",
    [
        ((700, 1300), np.uint16, 256, None, 50_000),  # 4 rows per block, shrink both axes
        ((333, 517, 3), np.uint8, 1024, None, 40_000),  # RGB, enlarge both axes
        ((1000, 250), np.float64, 256, (-1.0, 2.0), 10_000),  # shrink rows, enlarge columns
        ((129, 2000), np.int64, 64, None, 1),  # wide ints (float64 work), 1 row per block
        ((256, 256), np.uint16, 256, None, 100_000),  # already the model's size
        ((300, 256, 3), np.float32, 256, (0.0, 1.0), 30_000),  # width already S
        ((1, 1), np.uint16, 16, None, 1),
    ],
)
def test_tiled_preprocess_equals_whole_image_path(monkeypatch, shape, dtype, size,
                                                  intensity_range, block_bytes):
    rng = np.random.default_rng(0)
    if np.issubdtype(dtype, np.integer):
        hi = 2**40 if dtype == np.int64 else np.iinfo(dtype).max
        image = rng.integers(0, hi, shape, dtype=dtype)
    else:
        image = rng.normal(0.5, 0.6, shape).astype(dtype)
    monkeypatch.setattr(T, "BLOCK_BYTES", block_bytes)
    new = T.preprocess_image(image, size, intensity_range=intensity_range)
    old = old_model_input(image, size, intensity_range)
    assert new.shape == (1, 3, size, size)
    assert torch.equal(new, old)  # bit for bit
    assert torch.equal(T.to_model_input(T.map_intensity(image, intensity_range), size), old)


def test_non_finite_pixels_are_still_found_without_a_full_bool_copy():
    img = np.zeros((50, 60), np.float32)
    img[7, 9] = np.nan
    img[40, 1] = np.inf
    with pytest.raises(ValueError, match=r"2 NaN or infinite value\(s\), the first at \(row, "
                                         r"col\) \(7, 9\)"):
        T.preprocess_image(img, 32)
    img[:] = -np.inf
    with pytest.raises(ValueError, match="3000 NaN or infinite"):
        T.check_finite(img)


# ----------------------------------------------------------------------------- masks
@pytest.mark.parametrize(
    "m, low, hw, block_bytes",
    [
        (3, 64, (2000, 3000), 1 << 20),  # several row blocks
        (3, 256, (480, 640), 100_000),
        (1, 64, (37, 1001), 5_000),  # one column block of a few columns at a time
        (3, 256, (5000, 333), 1 << 20),
        (2, 64, (64, 64), None),  # same size: plain threshold
        (3, 256, (100, 7000), 3_000),  # shrink rows, enlarge columns, column blocks
        (1, 64, (20, 30), 1),  # one pixel per block
        (1, 256, (1, 1), None),
        (3, 256, (4097, 2049), None),
    ],
)
def test_tiled_masks_equal_thresholded_full_upsampling(m, low, hw, block_bytes):
    g = torch.Generator().manual_seed(hw[0] * 7 + hw[1])
    logits = torch.randn(m, low, low, generator=g) * 3
    logits[0, : low // 2] *= 1e-4  # many values within float rounding of the threshold
    new = T.logits_to_masks(logits, hw, block_bytes=block_bytes)
    ref = old_masks(logits, hw)
    assert new.dtype == bool and new.shape == (m, *hw)
    assert ref.size < 100 or 0.05 < ref.mean() < 0.95  # both classes: equality means something
    np.testing.assert_array_equal(new, ref)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_tiled_masks_on_cuda_agree_except_at_rounding():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 256, 256, generator=g) * 3
    new = T.logits_to_masks(logits.cuda(), (3000, 2000), block_bytes=1 << 20)
    ref = T.upsample_logits(logits[None], (3000, 2000))[0]
    differ = new != (ref > 0).numpy()
    assert not differ[ref.abs().numpy() > 1e-4].any()


# ----------------------------------------------------------------------------- predictor
@pytest.fixture(scope="module")
def model():
    from napari_sam2.model import build_model

    torch.manual_seed(0)
    return build_model("sam2_demo")


def cells(h, w, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.normal(1000, 50, (h, w))
    yy, xx = np.ogrid[:h, :w]
    img[(yy - h / 2) ** 2 + (xx - w / 3) ** 2 < (min(h, w) / 5) ** 2] += 800
    return img.clip(0, 65535).astype(np.uint16)


@pytest.mark.parametrize("max_hole_area", [0, 40])
def test_click_on_medium_image_equals_old_masks(monkeypatch, model, max_hole_area):
    image = cells(1500, 2100)
    monkeypatch.setattr(T, "BLOCK_BYTES", 400_000)  # many tiles for encode and masks
    pred = ImagePredictor(model, max_hole_area=max_hole_area, max_sprinkle_area=max_hole_area)
    emb = pred.encode(image)
    pred.embedding = emb
    p = pred.predict(points=[[750, 700], [200, 1900]], labels=[1, 0])
    low = torch.from_numpy(p.low_res_logits)
    assert low.abs().max() < 32  # not clamped, so the old way can start from these
    cleaned = postprocess_logits(low[None], max_hole_area=max_hole_area,
                                 max_sprinkle_area=max_hole_area)[0]
    assert p.masks.shape == (3, 1500, 2100) and p.masks.dtype == bool
    assert 0 < p.masks.sum() < p.masks.size
    np.testing.assert_array_equal(p.masks, old_masks(cleaned, (1500, 2100)))
    # the embedding equals one made from the whole-image model input
    monkeypatch.setattr(T, "BLOCK_BYTES", 1 << 40)
    whole = pred.encode(image)
    assert torch.equal(emb.image_embed, whole.image_embed)


def test_single_mask_on_large_image_equals_old_way(model):
    image = cells(6000, 6000, seed=1)
    pred = ImagePredictor(model)
    pred.set_image(image)
    p = pred.predict(box=(1500, 500, 4500, 3500), multimask_output=False)
    low = torch.from_numpy(p.low_res_logits)
    assert low.abs().max() < 32
    assert p.masks.shape == (1, 6000, 6000)
    assert 0 < p.masks.sum() < p.masks.size
    np.testing.assert_array_equal(p.masks, old_masks(low, (6000, 6000)))


# ----------------------------------------------------------------------------- memory
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(),
                    reason="reads the peak RSS from Linux's /proc")
def test_click_on_6000_square_image_keeps_peak_memory_near_the_image_size():
    """Peak extra RSS of encode and of one 3-mask click on a 6000 x 6000 uint16 image
    (72 MB). The old code measured 2.1x the image for encode (a float32 copy) and 12x for
    the click (three float32 masks before thresholding); now 0.4x and 2.1x."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_memory.py"), "--child", "6000",
         "--threads", "1"], env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    r = json.loads(done.stdout.strip().splitlines()[-1])
    image, masks = r["image"], r["masks"]
    assert image == 6000 * 6000 * 2 and masks == 3 * 6000 * 6000
    assert r["mask_pixels"] > 0
    assert r["encode_extra"] < 1.0 * image, r
    # the returned masks (1.5x the image) plus at most 1.5x the image of work
    assert r["click_extra"] < masks + 1.5 * image, r
