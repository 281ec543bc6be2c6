"""Device choice and autocast."""

import contextlib

import pytest
import torch

from napari_sam2.engine import device as D
from napari_sam2.engine import choose_device


def test_auto_picks_the_best_available():
    have = D.available_devices()
    assert have[-1] == "cpu"
    assert choose_device().type == have[0]
    assert choose_device("auto").type == have[0]
    assert choose_device(None).type == have[0]


def test_explicit_cpu_and_torch_device():
    assert choose_device("cpu") == torch.device("cpu")
    assert choose_device(" CPU ") == torch.device("cpu")
    assert choose_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("kind", ["cuda", "mps"])
def test_unavailable_device_is_a_clear_error(kind):
    if kind in D.available_devices():
        pytest.skip(f"{kind} is available here")
    with pytest.raises(ValueError, match="not available.*available: .*cpu"):
        choose_device(kind)


def test_unknown_names_and_types():
    with pytest.raises(ValueError, match="unknown device"):
        choose_device("gpu0")
    with pytest.raises(ValueError, match="unsupported device"):
        choose_device("meta")
    with pytest.raises(TypeError, match="string or torch.device"):
        choose_device(0)


def test_missing_cuda_index():
    if "cuda" not in D.available_devices():
        pytest.skip("no CUDA")
    with pytest.raises(ValueError, match="does not exist"):
        choose_device(f"cuda:{torch.cuda.device_count()}")


def test_autocast_is_float32_on_cpu():
    ctx = D.autocast("cpu")
    assert isinstance(ctx, contextlib.nullcontext)
    with ctx:
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.float32
    assert not D.supports_bfloat16("cpu")
    with pytest.raises(ValueError, match="bfloat16"):
        D.autocast("cpu", enabled=True)
    assert isinstance(D.autocast("cpu", enabled=False), contextlib.nullcontext)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_autocast_bf16_on_cuda():
    dev = torch.device("cuda")
    if not D.supports_bfloat16(dev):
        pytest.skip("GPU without bfloat16")
    with D.autocast(dev):
        y = torch.ones(4, 4, device=dev) @ torch.ones(4, 4, device=dev)
    assert y.dtype == torch.bfloat16
