"""Shared fixtures. Tests never read ../shared: fixtures live in tests/data/."""

import os
import tempfile
from pathlib import Path

import pytest

DATA_DIR = Path(__file__).parent / "data"

os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="xdg-"))
# The suite compares with Meta's float32 outputs and with fixed quality figures: float32 by
# default on every machine, also on CPUs with native bfloat16 (where the engine's default is
# bfloat16). Tests of bfloat16 pass bfloat16=True or clear the variable themselves.
os.environ["NAPARI_SAM2_BFLOAT16"] = "0"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA_DIR


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never touch the user's real checkpoint cache from a test."""
    monkeypatch.setenv("NAPARI_SAM2_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def shipped_demo_model():
    """The shipped, trained sam2_demo on the CPU, loaded once for the engine and lineage tests
    (which only read it: a test that changes a model loads its own)."""
    from napari_sam2.model import load_model

    return load_model("sam2_demo", device="cpu", progress=False)
