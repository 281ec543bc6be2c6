"""Optional torch.compile of the heavy parts (model/compile.py)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2.data.synthetic import make_cell_timelapse
from napari_sam2.engine import TrackingSession
from napari_sam2.model import load_model
from napari_sam2.model.compile import compile_parts, compiled_parts, uncompile_parts


def test_compiling_keeps_the_weights_and_can_be_undone():
    model = load_model("sam2_demo")
    keys = list(model.state_dict())
    compile_parts(model)  # torch.compile is lazy: nothing is compiled until a call
    assert compiled_parts(model) == ["image_encoder", "memory_attention"]
    assert list(model.state_dict()) == keys
    compile_parts(model, ("memory_encoder",))
    assert compiled_parts(model) == ["image_encoder", "memory_attention", "memory_encoder"]
    uncompile_parts(model)
    assert compiled_parts(model) == []
    with pytest.raises(ValueError, match="parts that can be compiled"):
        compile_parts(model, ("hiera",))


@pytest.mark.slow
def test_compiled_tracking_matches_eager():
    """The shipped model tracks 5 frames with its image encoder and memory attention
    compiled (on the CPU: inductor's C++ code, about a minute to build on 2 cores): the
    same masks as eager, logits equal to float rounding."""
    images, _ = make_cell_timelapse(n_frames=5, seed=0)
    model = load_model("sam2_demo").eval()

    def track():
        session = TrackingSession(model, images, bfloat16=False)
        session.add_points(0, 1, [[images.shape[1] // 2, images.shape[2] // 2]], [1])
        return [r.logits.copy() for r in session.propagate()]

    eager = track()
    compile_parts(model)
    try:
        compiled = track()
    finally:
        uncompile_parts(model)
    assert len(compiled) == len(eager) == 5
    for a, b in zip(eager, compiled):
        np.testing.assert_allclose(b, a, atol=1e-3, rtol=0)
        assert np.array_equal(a > 0, b > 0) or np.mean((a > 0) != (b > 0)) < 1e-4
