"""Hole filling and sprinkle removal (8-connected, any device)."""

from collections import deque

import numpy as np
import pytest
import torch

from napari_sam2.engine import postprocess as P


def _brute_small(binary: np.ndarray, max_area: int) -> np.ndarray:
    """Reference: breadth-first 8-connected flood fill, one 2-D map."""
    h, w = binary.shape
    seen = np.zeros_like(binary, bool)
    out = np.zeros_like(binary, bool)
    for i in range(h):
        for j in range(w):
            if not binary[i, j] or seen[i, j]:
                continue
            comp, queue = [], deque([(i, j)])
            seen[i, j] = True
            while queue:
                a, b = queue.popleft()
                comp.append((a, b))
                for da in (-1, 0, 1):
                    for db in (-1, 0, 1):
                        y, x = a + da, b + db
                        if 0 <= y < h and 0 <= x < w and binary[y, x] and not seen[y, x]:
                            seen[y, x] = True
                            queue.append((y, x))
            if len(comp) <= max_area:
                for a, b in comp:
                    out[a, b] = True
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_small_components_match_flood_fill(seed):
    rng = np.random.default_rng(seed)
    m = rng.random((2, 3, 24, 31)) < 0.35
    got = P.small_components(m, 4)
    for idx in np.ndindex(2, 3):
        np.testing.assert_array_equal(got[idx], _brute_small(m[idx], 4))


def _block_with_holes():
    logits = torch.full((1, 1, 20, 20), -5.0)
    logits[..., 2:18, 2:18] = 5.0
    logits[..., 5, 5] = -1.0  # 1-pixel hole
    logits[..., 8, 8] = -1.0  # 2-pixel hole, diagonal (one component only if 8-connected)
    logits[..., 9, 9] = -1.0
    logits[..., 12:16, 12:16] = -1.0  # 16-pixel hole
    return logits


def test_fill_holes_small_only_and_diagonal_connectivity():
    logits = _block_with_holes()
    out = P.fill_holes(logits, 2)
    assert out[0, 0, 5, 5] == 10.0 and out[0, 0, 8, 8] == 10.0 and out[0, 0, 9, 9] == 10.0
    assert (out[0, 0, 12:16, 12:16] == -1.0).all()
    assert (out[0, 0, 0] == -5.0).all()  # the big background stays
    assert P.fill_holes(logits, 1)[0, 0, 8, 8] == -1.0  # the diagonal pair has area 2
    assert (P.fill_holes(logits, 16)[0, 0, 12:16, 12:16] == 10.0).all()
    # the video predictor's variant: fill with 0.1
    assert P.fill_holes(logits, 2, fill_value=0.1)[0, 0, 5, 5] == pytest.approx(0.1)


def test_remove_sprinkles():
    logits = torch.full((1, 2, 16, 16), -3.0)
    logits[:, :, 1, 1] = 2.0  # 1-pixel sprinkle
    logits[:, :, 4:12, 4:12] = 2.0  # 64-pixel object
    logits[:, 1, 1, 1] = -3.0  # second map has no sprinkle
    out = P.remove_sprinkles(logits, 10)
    assert out[0, 0, 1, 1] == -10.0
    assert (out[:, :, 4:12, 4:12] == 2.0).all()
    assert (out[0, 1] == logits[0, 1]).all()


def test_off_by_default_returns_input():
    logits = _block_with_holes()
    assert P.postprocess_logits(logits) is logits
    assert P.fill_holes(logits, 0) is logits
    assert P.remove_sprinkles(logits, 0) is logits


def test_postprocess_finds_both_sets_on_the_input():
    logits = _block_with_holes()
    logits[..., 0, 19] = 1.0  # a 1-pixel sprinkle in the background corner
    out = P.postprocess_logits(logits, max_hole_area=2, max_sprinkle_area=3)
    assert out[0, 0, 5, 5] == 10.0  # filled hole survives sprinkle removal
    assert out[0, 0, 0, 19] == -10.0
    assert (out[0, 0, 12:16, 12:16] == -1.0).all()
    assert out.dtype == logits.dtype and out.shape == logits.shape


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
def test_same_result_on_cuda():
    logits = _block_with_holes()
    cpu = P.postprocess_logits(logits, max_hole_area=2, max_sprinkle_area=3)
    gpu = P.postprocess_logits(logits.cuda(), max_hole_area=2, max_sprinkle_area=3)
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=0)
