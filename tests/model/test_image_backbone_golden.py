"""encode_image reproduces Meta's image embedding, high-res features and dense PE.

Fixture: tests/data/golden_image_backbone.npz, derived by tests/data/make_backbone_fixture.py
from Meta's SAM2ImagePredictor outputs under the deterministic reference weights.
"""

import json

import numpy as np
import pytest
import torch

from tests.data.make_backbone_fixture import model_input
from tests.reference_weights import reference_model

TOL = 1e-4  # x max |reference|; the acceptance bound is 1e-3, Meta's own thread noise ~2e-6


@pytest.fixture(scope="module")
def golden(data_dir):
    return dict(np.load(data_dir / "golden_image_backbone.npz"))


@pytest.fixture(scope="module")
def outputs(golden):
    model = reference_model("sam2.1_hiera_tiny")
    x = model_input(golden["image"])
    with torch.inference_mode():
        feats = model.encode_image(x)
        return {
            "image_embed": model.add_no_mem_embed(feats.vision_features),
            "high_res_feat0": feats.high_res_features[0],
            "high_res_feat1": feats.high_res_features[1],
            "dense_pe": model.dense_pe(),
        }


def test_fixture_input_rebuild_was_exact(golden):
    meta = json.loads(str(golden["meta"]))
    assert meta["input_max_abs_err"] < 1e-6


@pytest.mark.parametrize("key", ["image_embed", "high_res_feat0", "high_res_feat1", "dense_pe"])
def test_backbone_output_matches_meta(golden, outputs, key):
    ours = outputs[key]
    assert tuple(ours.shape) == tuple(golden[f"{key}__shape"])
    ours = ours[:, golden[f"{key}__channels"]].numpy()
    ref = golden[f"{key}__values"]
    err = np.abs(ours - ref).max() / golden[f"{key}__max_abs"]
    assert err < TOL, f"{key}: max error {err:.2e} x max|ref|"
