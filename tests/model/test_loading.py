"""load_model: local files of both formats, the shipped demo weights, the download path
end to end (real HTTP server on 127.0.0.1), wrong-variant files, and device choice."""

from __future__ import annotations

import functools
import http.server
import json
import threading

import pytest
import torch
from safetensors.torch import save_file

from napari_sam2.model import build_model, load_model
from napari_sam2.model import download, loading
from napari_sam2.model.checkpoint import CheckpointError
from napari_sam2.model.config import VARIANTS
from napari_sam2.model.download import sha256_of
from napari_sam2.model.device import choose_device
from napari_sam2.model.loading import shipped_weights_path


@pytest.fixture(scope="module")
def demo_state_dict():
    torch.manual_seed(1)
    return {k: v.clone() for k, v in build_model("sam2_demo").state_dict().items()}


@pytest.fixture
def demo_files(tmp_path, demo_state_dict):
    pt = tmp_path / "demo.pt"
    torch.save({"model": demo_state_dict}, pt)
    st = tmp_path / "demo.safetensors"
    save_file(demo_state_dict, str(st))
    return pt, st


def _assert_loaded(model, state_dict):
    assert not model.training
    sd = model.state_dict()
    assert sd.keys() == state_dict.keys()
    for k, v in state_dict.items():
        assert sd[k].dtype == torch.float32
        assert torch.equal(sd[k].cpu(), v), k


@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_local_checkpoint(demo_files, demo_state_dict, fmt):
    path = demo_files[0] if fmt == "pt" else demo_files[1]
    model = load_model("sam2_demo", path, device="cpu")
    _assert_loaded(model, demo_state_dict)
    assert next(model.parameters()).device == torch.device("cpu")


def test_wrong_variant_file_fails_fast_and_names_both(demo_files):
    with pytest.raises(CheckpointError) as info:
        load_model("sam2.1_hiera_large", demo_files[0], device="cpu")
    message = str(info.value)
    assert str(demo_files[0]) in message
    assert "'sam2_demo' checkpoint, not 'sam2.1_hiera_large'" in message


def test_missing_checkpoint_and_unknown_variant(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        load_model("sam2_demo", tmp_path / "absent.pt")
    with pytest.raises(ValueError, match="known variants"):
        load_model("sam3_hiera_huge")


def test_variant_without_weights_asks_for_a_file(monkeypatch):
    monkeypatch.setitem(VARIANTS, "my_small", VARIANTS["sam2_demo"])
    with pytest.raises(ValueError, match=r"load_model\('my_small', checkpoint=path\)"):
        load_model("my_small")


def test_shipped_weights(monkeypatch, tmp_path, demo_files, demo_state_dict):
    shipped = tmp_path / "sam2_demo.safetensors"
    shipped.write_bytes(demo_files[1].read_bytes())
    monkeypatch.setattr(loading, "shipped_weights_path", lambda name: shipped)
    _assert_loaded(load_model("sam2_demo", device="cpu"), demo_state_dict)
    # a record beside the file with its sha256 is checked
    record = tmp_path / "sam2_demo.json"
    record.write_text(json.dumps({"sha256": sha256_of(shipped), "notes": "demo"}))
    _assert_loaded(load_model("sam2_demo", device="cpu"), demo_state_dict)
    record.write_text(json.dumps({"sha256": "0" * 64}))
    with pytest.raises(CheckpointError, match="Reinstall napari-sam2"):
        load_model("sam2_demo", device="cpu")


def test_shipped_weights_missing_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(loading, "shipped_weights_path", lambda name: tmp_path / "gone.safetensors")
    with pytest.raises(FileNotFoundError, match="missing from this installation"):
        load_model("sam2_demo")


def test_shipped_path_is_inside_the_package():
    path = shipped_weights_path("sam2_demo")
    assert path.parent.name == "weights" and path.parent.parent.name == "napari_sam2"
    with pytest.raises(ValueError, match="not shipped"):
        shipped_weights_path("sam2.1_hiera_tiny")


def test_installed_demo_model_loads():
    """The weights ship in the package: without them this fails (it never skips)."""
    assert shipped_weights_path("sam2_demo").is_file()
    model = load_model("sam2_demo", device="cpu")
    assert not model.training


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_path_end_to_end(monkeypatch, tmp_path, demo_files, demo_state_dict):
    served = tmp_path / "served"
    served.mkdir()
    (served / "sam2_demo.pt").write_bytes(demo_files[0].read_bytes())
    handler = functools.partial(_QuietHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/sam2_demo.pt"
        monkeypatch.delitem(loading.SHIPPED_WEIGHTS, "sam2_demo")
        monkeypatch.setitem(download.CHECKPOINT_URLS, "sam2_demo", url)
        seen = []
        cache = tmp_path / "cache"
        model = load_model("sam2_demo", cache_dir=cache, device="cpu",
                           progress=lambda d, t: seen.append((d, t)))
    finally:
        httpd.shutdown()
        httpd.server_close()
    _assert_loaded(model, demo_state_dict)
    size = demo_files[0].stat().st_size
    assert seen[-1] == (size, size)
    assert (cache / "sam2_demo.pt.json").is_file()
    # the server is gone: the cached, verified file is used
    _assert_loaded(load_model("sam2_demo", cache_dir=cache, device="cpu"), demo_state_dict)


def test_load_model_resolves_auto_device():
    auto = choose_device()
    if torch.cuda.is_available():
        assert auto.type == "cuda"
    elif torch.backends.mps.is_available():
        assert auto.type == "mps"
    else:
        assert auto == torch.device("cpu")
    assert choose_device("auto") == auto
    assert choose_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_load_on_cuda(demo_files, demo_state_dict):
    model = load_model("sam2_demo", demo_files[1], device="cuda")
    assert next(model.parameters()).device.type == "cuda"
    _assert_loaded(model, demo_state_dict)


def test_build_and_load_read_devices_alike():
    """None and "auto" pick the same device in both; only the defaults differ (cpu / auto)."""
    from napari_sam2.model.device import choose_device

    best = choose_device("auto").type
    assert next(build_model("sam2_demo", device=None).parameters()).device.type == best
    assert next(build_model("sam2_demo", device="auto").parameters()).device.type == best
    assert next(build_model("sam2_demo").parameters()).device.type == "cpu"
    assert next(load_model("sam2_demo", device=None).parameters()).device.type == best
    with pytest.raises(ValueError, match="unknown device"):
        build_model("sam2_demo", device="tpu")
