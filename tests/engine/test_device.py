"""Device choice and autocast."""

import contextlib

import pytest
import torch

from napari_sam2.engine import device as D
from napari_sam2.engine import choose_device
from napari_sam2.errors import InvalidOptionError


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


def test_cpu_flags_are_read_from_cpuinfo_text():
    text = "processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16\nbugs\t\t: none\n"
    assert D.cpu_flags(text) == {"fpu", "sse", "avx512f", "avx512_bf16"}
    assert D.cpu_flags("model name: x\n") == set()


def test_native_bfloat16_detection_matches_proc_cpuinfo():
    try:
        with open("/proc/cpuinfo") as f:
            flags = D.cpu_flags(f.read())
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    expect = bool({"avx512_bf16", "amx_bf16"} & flags)
    assert D.cpu_has_native_bfloat16() is expect


@pytest.mark.parametrize("raw, value", [("", None), ("0", False), ("1", True), (" ON ", True),
                                        ("false", False)])
def test_environment_override_values(monkeypatch, raw, value):
    monkeypatch.setenv(D.ENV_VAR, raw)
    assert D.bfloat16_override() is value


def test_bad_environment_override_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(D.ENV_VAR, "maybe")
    with pytest.raises(InvalidOptionError, match="NAPARI_SAM2_BFLOAT16='maybe'.*1.*0.*unset"):
        D.autocast("cpu")


def test_cpu_default_is_float32_and_bfloat16_is_opt_in(monkeypatch):
    monkeypatch.delenv(D.ENV_VAR, raising=False)
    native = D.cpu_has_native_bfloat16()
    assert D.supports_bfloat16("cpu") is native
    with D.autocast("cpu"):
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.float32  # opt-in on the CPU, detected or not
    if native:
        with D.autocast("cpu", enabled=True):
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    monkeypatch.setenv(D.ENV_VAR, "0")  # float32 by default, bfloat16 still on request
    assert isinstance(D.autocast("cpu"), contextlib.nullcontext)
    monkeypatch.setenv(D.ENV_VAR, "1")  # the CPU counts as capable
    assert D.supports_bfloat16("cpu") and D.uses_bfloat16("cpu")
    with D.autocast("cpu"):
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.bfloat16
    assert isinstance(D.autocast("cpu", enabled=False), contextlib.nullcontext)


def test_float32_on_a_cpu_without_native_bfloat16(monkeypatch):
    """The detection is replaced by False here: the real path of CPUs without AVX512-BF16."""
    monkeypatch.delenv(D.ENV_VAR, raising=False)
    monkeypatch.setattr(D, "cpu_has_native_bfloat16", lambda: False)
    ctx = D.autocast("cpu")
    assert isinstance(ctx, contextlib.nullcontext)
    with ctx:
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.float32
    assert not D.supports_bfloat16("cpu")
    with pytest.raises(ValueError, match="bfloat16.*cpu has none.*NAPARI_SAM2_BFLOAT16=1"):
        D.autocast("cpu", enabled=True)
    assert isinstance(D.autocast("cpu", enabled=False), contextlib.nullcontext)


def test_suite_runs_in_float32_by_default():
    """tests/conftest.py sets NAPARI_SAM2_BFLOAT16=0: golden figures stay float32 anywhere."""
    assert not D.uses_bfloat16("cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_autocast_bf16_on_cuda():
    dev = torch.device("cuda")
    if not D.supports_bfloat16(dev):
        pytest.skip("GPU without bfloat16")
    with D.autocast(dev):
        y = torch.ones(4, 4, device=dev) @ torch.ones(4, 4, device=dev)
    assert y.dtype == torch.bfloat16
