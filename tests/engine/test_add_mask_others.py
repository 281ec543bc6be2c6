"""``TrackingSession.add_mask(..., others=False)``: the result holds only that object, and the
session's state is the same as with the default (every object's result)."""

import numpy as np
import torch

from napari_sam2.engine import TrackingSession
from napari_sam2.model import build_model


def _masks():
    masks = {}
    for k in range(1, 5):
        m = np.zeros((48, 64), bool)
        m[4 + 10 * (k - 1): 12 + 10 * (k - 1), 8 * k: 8 * k + 10] = True
        masks[k] = m
    return masks


def test_add_mask_others_false_returns_one_object_same_state():
    torch.manual_seed(0)
    model = build_model("sam2_demo")
    frames = np.random.default_rng(0).integers(0, 255, (3, 48, 64)).astype(np.uint8)
    a, b = TrackingSession(model, frames), TrackingSession(model, frames)
    for k, m in _masks().items():
        ra = a.add_mask(0, k, m)
        rb = b.add_mask(0, k, m, others=False)
        assert ra.obj_ids == list(range(1, k + 1))
        assert rb.obj_ids == [k]
        assert np.array_equal(rb.logits[0], ra.logits[k - 1])
    full_a, full_b = a.result(0), b.result(0)
    assert full_a.obj_ids == full_b.obj_ids == [1, 2, 3, 4]
    assert np.array_equal(full_a.logits, full_b.logits)
    for ra, rb in zip(a.propagate(0), b.propagate(0)):
        assert ra.obj_ids == rb.obj_ids and np.array_equal(ra.logits, rb.logits)
