"""Exported weights, their record and training checkpoints are replaced atomically: a failing
export (full disk, a record that is not JSON) leaves the previous files exactly as they were."""

import json
import os

import pytest
import torch
from safetensors.torch import load_file

from napari_sam2.training.export import export_weights, file_sha256, save_torch_atomic
from tests.full_disk import hidden_leftovers, run_on_full_disk


def _small(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Linear(8, 4)


def test_export_writes_weights_and_record(tmp_path):
    out = export_weights(_small(), tmp_path / "w" / "m.safetensors", {"variant": "x"})
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["sha256"] == file_sha256(out) and record["bytes"] == out.stat().st_size
    assert record["file"] == "m.safetensors" and record["variant"] == "x"
    assert torch.equal(load_file(out)["weight"], _small().weight)
    umask = os.umask(0)
    os.umask(umask)
    for file in (out, out.with_suffix(".json")):  # the permissions a plain open() gives
        assert file.stat().st_mode & 0o777 == 0o666 & ~umask
    assert hidden_leftovers(out.parent) == []


def test_export_with_a_record_that_is_not_json_changes_nothing(tmp_path):
    out = export_weights(_small(), tmp_path / "m.safetensors", {"variant": "old"})
    before = (out.read_bytes(), out.with_suffix(".json").read_bytes())
    with pytest.raises(ValueError, match="record for .*m.safetensors cannot be saved as JSON"):
        export_weights(_small(1), out, {"variant": "new", "device": torch.device("cpu")})
    assert (out.read_bytes(), out.with_suffix(".json").read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]


_EXPORT = """
import torch
from napari_sam2.training.export import export_weights, save_torch_atomic
big = torch.nn.Linear(1000, 1000)
try:
    {call}
except OSError as exc:
    print("OSError:", exc)
else:
    print("no error")
"""


def test_export_on_a_full_disk_keeps_the_previous_weights(tmp_path):
    out = export_weights(_small(), tmp_path / "m.safetensors", {"variant": "old"})
    before = (out.read_bytes(), out.with_suffix(".json").read_bytes())
    call = f"export_weights(big, {str(out)!r}, {{'variant': 'new'}})"
    result = run_on_full_disk(_EXPORT.format(call=call), 1_000_000)
    assert result.stdout.startswith("OSError:"), result.stdout + result.stderr
    assert str(out) in result.stdout and "File too large" in result.stdout
    assert (out.read_bytes(), out.with_suffix(".json").read_bytes()) == before
    assert torch.equal(load_file(out)["weight"], _small().weight)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]


def test_torch_checkpoint_on_a_full_disk_keeps_the_previous_one(tmp_path):
    ckpt = save_torch_atomic({"model": _small().state_dict(), "step": 3}, tmp_path / "c.pt")
    before = ckpt.read_bytes()
    call = f"save_torch_atomic({{'model': big.state_dict(), 'step': 9}}, {str(ckpt)!r})"
    result = run_on_full_disk(_EXPORT.format(call=call), 1_000_000)
    assert result.stdout.startswith("OSError:"), result.stdout + result.stderr
    assert ckpt.read_bytes() == before
    assert torch.load(ckpt, weights_only=True)["step"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]


def test_export_into_a_folder_name_is_refused_clearly(tmp_path):
    (tmp_path / "m.safetensors").mkdir()
    with pytest.raises(IsADirectoryError, match="m.safetensors: a folder of that name exists"):
        export_weights(_small(), tmp_path / "m.safetensors")
