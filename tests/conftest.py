"""Shared fixtures. Tests never read ../shared: fixtures live in tests/data/."""

import os
import tempfile
from pathlib import Path

import pytest

DATA_DIR = Path(__file__).parent / "data"

os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="xdg-"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA_DIR


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never touch the user's real checkpoint cache from a test."""
    monkeypatch.setenv("NAPARI_SAM2_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
