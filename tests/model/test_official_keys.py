"""Our module names and shapes equal Meta's checkpoints for all 8 official variants."""

import pytest
import torch

from napari_sam2.model import VARIANTS, build_model
from tests.reference_weights import OFFICIAL_NAMES, read_key_list


@pytest.mark.parametrize("name", OFFICIAL_NAMES)
def test_state_dict_keys_and_shapes_equal_official(name):
    model = build_model(name, device="meta")
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    official = read_key_list(name)
    assert sorted(set(ours) - set(official)) == []
    assert sorted(set(official) - set(ours)) == []
    wrong = {k: (ours[k], s) for k, s in official.items() if ours[k] != s}
    assert wrong == {}
    assert list(ours) == list(official), "state_dict order differs from Meta's"


@pytest.mark.parametrize("name", OFFICIAL_NAMES)
def test_strict_load_of_an_official_shaped_state_dict(name):
    model = build_model(name, device="meta")
    sd = {k: torch.empty(s, device="meta") for k, s in read_key_list(name).items()}
    result = model.load_state_dict(sd, strict=True, assign=True)
    assert not result.missing_keys and not result.unexpected_keys
    with pytest.raises(RuntimeError, match="Missing key"):
        sd.pop(next(iter(sd)))
        build_model(name, device="meta").load_state_dict(sd, strict=True, assign=True)


def test_parameter_counts_match_the_reference():
    # ARCHITECTURE.md §1.2, measured with Meta's code
    expected = {"sam2.1_hiera_tiny": 38_962_498, "sam2_hiera_tiny": 38_945_986,
                "sam2.1_hiera_large": 224_446_642, "sam2_hiera_base_plus": 80_833_666}
    for name, n in expected.items():
        model = build_model(name, device="meta")
        assert sum(p.numel() for p in model.parameters()) == n, name


def test_medsam2_has_the_tiny_keys_and_a_512_input():
    model = build_model("medsam2", device="meta")
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == read_key_list("sam2.1_hiera_tiny")
    assert VARIANTS["medsam2"].image_size == 512 and VARIANTS["medsam2"].feature_size == 32
