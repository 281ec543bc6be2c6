"""A tiny SAM 2 (64-pixel input) for fast training tests."""

from dataclasses import replace

import pytest

from napari_sam2.model import build_model
from napari_sam2.model.config import get_config


@pytest.fixture
def tiny_model():
    import torch

    torch.manual_seed(0)
    cfg = replace(get_config("sam2_demo"), name="tiny_train_test", image_size=64)
    return build_model(cfg)
