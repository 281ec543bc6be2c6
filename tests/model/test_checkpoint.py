"""Reading checkpoints safely (formats, damage, pickled code) and loading them strictly
(missing/unexpected keys, shapes, files of another variant, compile/DDP prefixes)."""

from __future__ import annotations

import itertools
import pickle

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from napari_sam2.model import build_model
from napari_sam2.model.checkpoint import (
    CheckpointError,
    check_state_dict,
    identify_variant,
    load_weights,
    normalize_keys,
    read_state_dict,
)
from napari_sam2.model.config import VARIANTS

OFFICIAL = [n for n in VARIANTS if n.startswith(("sam2_hiera", "sam2.1_hiera"))]


@pytest.fixture(scope="module")
def demo_state_dict():
    torch.manual_seed(0)
    return {k: v.clone() for k, v in build_model("sam2_demo").state_dict().items()}


@pytest.fixture(scope="module")
def meta_state_dicts():
    """Key -> shape of every registered variant, from models built on the meta device."""
    out = {}
    for name, config in VARIANTS.items():
        with torch.device("meta"):
            out[name] = build_model(config, device="meta").state_dict()
    return out


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# --- formats --------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["model", "state_dict", "bare"])
def test_torch_layouts(tmp_path, demo_state_dict, layout):
    obj = demo_state_dict if layout == "bare" else {layout: demo_state_dict, "epoch": 3}
    path = tmp_path / "w.pt"
    torch.save(obj, path)
    _same(read_state_dict(path), demo_state_dict)


def test_legacy_torch_format(tmp_path, demo_state_dict):
    path = tmp_path / "w.pth"
    torch.save({"model": demo_state_dict}, path, _use_new_zipfile_serialization=False)
    _same(read_state_dict(path), demo_state_dict)


def test_safetensors_detected_by_content_not_name(tmp_path, demo_state_dict):
    path = tmp_path / "weights.bin"
    save_file(demo_state_dict, str(path))
    _same(read_state_dict(path), demo_state_dict)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        read_state_dict(tmp_path / "nope.pt")


# --- damaged files --------------------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.99])
def test_truncated_torch_file(tmp_path, demo_state_dict, fraction):
    full = tmp_path / "full.pt"
    torch.save({"model": demo_state_dict}, full)
    data = full.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(CheckpointError) as info:
        read_state_dict(cut)
    assert str(cut) in str(info.value) and "Delete it" in str(info.value)


@pytest.mark.parametrize("fraction", [0.5, 0.99])
def test_truncated_safetensors_file(tmp_path, demo_state_dict, fraction):
    full = tmp_path / "full.safetensors"
    save_file(demo_state_dict, str(full))
    data = full.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        read_state_dict(cut)


def test_garbage_file(tmp_path):
    path = tmp_path / "garbage.pt"
    path.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(CheckpointError, match="garbage.pt"):
        read_state_dict(path)


class _Payload:
    """Unpickling this would create a file: the proof that code ran."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def test_pickled_code_is_never_run(tmp_path, demo_state_dict):
    sentinel = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": demo_state_dict, "payload": _Payload(sentinel)}, path)
    with pytest.raises(CheckpointError, match="Python objects other than tensors"):
        read_state_dict(path)
    assert not sentinel.exists()
    # the same with a plain pickle stream (legacy format path)
    legacy = tmp_path / "evil_legacy.pt"
    with open(legacy, "wb") as f:
        pickle.dump({"model": _Payload(sentinel)}, f, protocol=2)
    with pytest.raises(CheckpointError):
        read_state_dict(legacy)
    assert not sentinel.exists()


def test_non_tensor_entries_and_empty(tmp_path):
    path = tmp_path / "odd.pt"
    torch.save({"a.weight": torch.zeros(2), "b": 3}, path)
    with pytest.raises(CheckpointError, match="not tensors"):
        read_state_dict(path)
    torch.save({}, path)
    with pytest.raises(CheckpointError, match="no state dict"):
        read_state_dict(path)


# --- prefixes -------------------------------------------------------------------------------


def test_prefixes_from_compile_and_data_parallel():
    net = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    plain = net.state_dict()
    compiled = torch.compile(net).state_dict()  # wrapping only; nothing is compiled
    assert all(k.startswith("_orig_mod.") for k in compiled)
    wrapped = nn.DataParallel(torch.compile(net)).state_dict()
    assert all(k.startswith("module._orig_mod.") for k in wrapped)
    for sd in (compiled, wrapped):
        _same(normalize_keys(sd), plain)
    inner = {"image_encoder._orig_mod.trunk.w": torch.ones(1), "no_mem_embed": torch.ones(1)}
    assert set(normalize_keys(inner)) == {"image_encoder.trunk.w", "no_mem_embed"}
    # a leading "module." that not every key has is a real name, kept
    assert set(normalize_keys({"module.x": torch.ones(1), "y": torch.ones(1)})) == {"module.x", "y"}


def test_compiled_demo_checkpoint_loads(tmp_path, demo_state_dict):
    path = tmp_path / "compiled.pt"
    torch.save({"model": {f"module._orig_mod.{k}": v for k, v in demo_state_dict.items()}}, path)
    model = build_model("sam2_demo")
    load_weights(model, read_state_dict(path), variant_name="sam2_demo")
    _same(model.state_dict(), demo_state_dict)


# --- strict loading -------------------------------------------------------------------------


def test_load_weights_roundtrip(demo_state_dict):
    model = build_model("sam2_demo")
    load_weights(model, demo_state_dict, variant_name="sam2_demo")
    _same(model.state_dict(), demo_state_dict)


def test_missing_and_unexpected_keys_are_listed(demo_state_dict):
    sd = dict(demo_state_dict)
    removed = sorted(sd)[:7]
    for k in removed:
        del sd[k]
    sd["extra.head.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as info:
        load_weights(build_model("sam2_demo"), sd, variant_name="sam2_demo")
    message = str(info.value)
    assert "7 missing key(s)" in message and removed[0] in message
    assert "1 unexpected key(s)" in message and "extra.head.weight" in message
    assert "'sam2_demo'" in message


def test_shape_mismatch_is_reported(demo_state_dict):
    sd = dict(demo_state_dict)
    sd["no_mem_embed"] = torch.zeros(1, 1, 7)
    with pytest.raises(CheckpointError, match=r"1 shape mismatch.*no_mem_embed: file \(1, 1, 7\)"):
        check_state_dict(sd, "sam2_demo")


def test_demo_weights_loaded_as_another_variant_name_the_demo(demo_state_dict):
    with pytest.raises(CheckpointError, match="'sam2_demo' checkpoint, not 'sam2.1_hiera_tiny'"):
        check_state_dict(demo_state_dict, "sam2.1_hiera_tiny")


def test_each_official_signature_identifies_its_variant(meta_state_dicts):
    shapes = {n: {k: tuple(v.shape) for k, v in sd.items()} for n, sd in meta_state_dicts.items()}
    for name in OFFICIAL:
        expected = {name, "medsam2"} if name == "sam2.1_hiera_tiny" else {name}
        assert set(identify_variant(shapes[name])) == expected
    assert identify_variant(shapes["sam2_demo"]) == ["sam2_demo"]


@pytest.mark.parametrize("file_variant,model_variant", list(itertools.permutations(OFFICIAL, 2)))
def test_official_file_of_another_variant_is_named(meta_state_dicts, file_variant, model_variant):
    with pytest.raises(CheckpointError) as info:
        check_state_dict(meta_state_dicts[file_variant], model_variant)
    head, _, tail = str(info.value).partition(" not ")
    assert f"'{file_variant}'" in head
    assert tail.startswith(f"'{model_variant}'")


def test_load_weights_on_meta_names_the_file_variant(meta_state_dicts):
    with torch.device("meta"):
        model = build_model("sam2.1_hiera_large", device="meta")
    with pytest.raises(CheckpointError, match="'sam2_hiera_large' checkpoint, not 'sam2.1_hiera_"):
        load_weights(model, meta_state_dicts["sam2_hiera_large"], variant_name="sam2.1_hiera_large")
    load_weights(model, meta_state_dicts["sam2.1_hiera_large"], variant_name="sam2.1_hiera_large")


def test_medsam2_and_sam21_tiny_files_are_interchangeable(meta_state_dicts):
    check_state_dict(meta_state_dicts["medsam2"], "sam2.1_hiera_tiny")
    check_state_dict(meta_state_dicts["sam2.1_hiera_tiny"], "medsam2")


def test_partial_official_file_matches_no_variant(meta_state_dicts):
    sd = dict(meta_state_dicts["sam2.1_hiera_small"])
    del sd["no_obj_ptr"]
    with pytest.raises(CheckpointError, match="matches no other registered variant"):
        check_state_dict(sd, "sam2.1_hiera_small")


@pytest.mark.parametrize("name", OFFICIAL)
def test_official_key_lists_are_identified(name):
    from tests.reference_weights import read_key_list

    expected = {name, "medsam2"} if name == "sam2.1_hiera_tiny" else {name}
    assert set(identify_variant(read_key_list(name))) == expected


@pytest.mark.slow
def test_official_format_file_loads_with_load_model(tmp_path):
    """Meta's layout ({"model": sd}, 156 MB) with the reference weight rule, via a file."""
    from napari_sam2.model import load_model
    from tests.reference_weights import reference_state_dict

    sd = reference_state_dict("sam2.1_hiera_tiny")
    path = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": sd}, path)
    for name in ("sam2.1_hiera_tiny", "medsam2"):
        model = load_model(name, path, device="cpu")
        _same(model.state_dict(), sd)
    with pytest.raises(CheckpointError, match="'sam2.1_hiera_tiny' / 'medsam2' checkpoint, not"):
        load_model("sam2_hiera_tiny", path, device="cpu")


@pytest.mark.parametrize("content", [b"hello, I am a text file\n", b"<html>404</html>"],
                         ids=["text", "html"])
def test_a_file_that_is_not_a_checkpoint_is_named(tmp_path, content):
    path = tmp_path / "notes.pt"  # a text file named .pt gave KeyError: 101 from torch
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"notes\.pt is not a checkpoint.*Choose the weights"):
        read_state_dict(path)
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"notes\.pt is truncated or corrupt \(the file is "
                                              r"empty\)"):
        read_state_dict(path)
