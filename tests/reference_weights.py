"""Deterministic reference weights (ARCHITECTURE.md §3) from the official key lists.

The golden outputs in ``tests/data`` were made by Meta's code with these weights. Each
tensor is drawn from its own generator seeded by ``zlib.crc32(key)``: scale 1/sqrt(fan-in)
for tensors of >= 2 dims, 1 + 0.02 N(0,1) for 1-dim ``.weight`` (LayerNorm), 0.02 N(0,1)
for other 1-dim tensors, and N(0,1) for the prompt encoder's Fourier buffer.

Usage (from any test): ``from tests.reference_weights import reference_state_dict``.
"""

from __future__ import annotations

import math
import re
import zlib
from functools import lru_cache
from pathlib import Path

import torch

KEY_DIR = Path(__file__).parent / "data" / "state_dict_keys"
PE_GAUSSIAN_KEY = "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"
OFFICIAL_NAMES = tuple(f"{v}_hiera_{s}" for v in ("sam2", "sam2.1")
                       for s in ("tiny", "small", "base_plus", "large"))
_LINE = re.compile(r"^(\S+)\s+\(([\d,\s]*)\)\s+\d+\s+(param|buffer)\s*$")


@lru_cache(maxsize=None)
def read_key_list(name: str) -> dict[str, tuple[int, ...]]:
    """Official state-dict keys and shapes of a variant, in the file's (state_dict) order.

    ``medsam2`` shares the ``sam2.1_hiera_tiny`` list.
    """
    if name == "medsam2":
        name = "sam2.1_hiera_tiny"
    path = KEY_DIR / f"{name}.txt"
    if not path.exists():
        raise ValueError(f"no key list for {name!r}; known: {', '.join(OFFICIAL_NAMES)}")
    shapes: dict[str, tuple[int, ...]] = {}
    for line in path.read_text().splitlines():
        m = _LINE.match(line)
        if m:
            shapes[m.group(1)] = tuple(int(s) for s in m.group(2).replace(" ", "").split(",")
                                       if s)
    return shapes


def reference_tensor(key: str, shape: tuple[int, ...]) -> torch.Tensor:
    """The rule's float32 tensor for one key."""
    g = torch.Generator(device="cpu").manual_seed(zlib.crc32(key.encode("utf-8")))
    r = torch.randn(shape, generator=g, dtype=torch.float32)
    if key == PE_GAUSSIAN_KEY:
        return r * 1.0
    if len(shape) >= 2:
        return r * (1.0 / math.sqrt(math.prod(shape) // shape[0]))
    if key.endswith(".weight"):
        return r * 0.02 + 1.0
    return r * 0.02


@lru_cache(maxsize=2)
def _cached(name: str) -> dict[str, torch.Tensor]:
    return {k: reference_tensor(k, s) for k, s in read_key_list(name).items()}


def reference_state_dict(name: str) -> dict[str, torch.Tensor]:
    """{key: tensor} for every official key of ``name`` (cached; a fresh dict each call,
    the tensors are shared: do not modify them in place)."""
    return dict(_cached(name))


def reference_model(name: str = "sam2.1_hiera_tiny"):
    """build_model(name) with the reference weights loaded (strict)."""
    from napari_sam2.model import build_model

    model = build_model(name)
    model.load_state_dict(reference_state_dict(name), strict=True)
    return model
