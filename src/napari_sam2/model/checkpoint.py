"""Reading checkpoint files safely and loading them into a model strictly.

A checkpoint is untrusted input. Files are read either with safetensors or with
``torch.load(..., weights_only=True)``, which refuses to unpickle anything but tensors and plain
containers, so a malicious ``.pt`` file cannot run code. Accepted layouts:

* ``{"model": state_dict}`` (Meta's official files, MedSAM2's),
* ``{"state_dict": state_dict}`` (common in training frameworks),
* a bare state dict,
* a safetensors file (a flat ``{key: tensor}`` map).

Keys saved from a ``torch.compile``-d model (``_orig_mod.``) or a DDP / DataParallel wrapper
(leading ``module.``) are normalised. Loading is strict: a file of another registered variant
is recognised by its key and shape signature and named in the error.
"""

from __future__ import annotations

import functools
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from napari_sam2.model.download import CheckpointError  # torch-free home, re-exported here

__all__ = [
    "CheckpointError",
    "check_state_dict",
    "identify_variant",
    "load_weights",
    "normalize_keys",
    "read_state_dict",
]

#: How many offending keys an error message lists.
_MAX_LISTED = 5

_ZIP_MAGIC = b"PK\x03\x04"
_WRAPPER_KEYS = ("model", "state_dict")
_PICKLE_PROTO = b"\x80"  # a legacy (non-zip) torch file is a pickle of protocol 2 or later


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Read a state dict from a ``.pt``/``.pth`` (torch) or ``.safetensors`` file, on the CPU.

    The format is detected from the file's first bytes, not its name. Nothing but tensors is
    ever unpickled. Prefixes from ``torch.compile`` and DDP are removed (see
    :func:`normalize_keys`).

    Args:
        path: the checkpoint file.

    Returns:
        ``{key: tensor}`` with CPU tensors, keys as the model's ``state_dict()`` names them.

    Raises:
        FileNotFoundError: the file does not exist.
        CheckpointError: the file is not a checkpoint at all (e.g. text), is truncated or
            corrupt, holds Python objects other than tensors, or holds no recognisable state
            dict.
    """
    path = Path(path)
    check_checkpoint_path(path)
    kind = _sniff_format(path)
    if kind == "safetensors":
        raw = _read_safetensors(path)
    else:
        raw = _read_torch(path, zip_format=kind == "torch-zip")
    return normalize_keys(_unwrap(raw, path))


def normalize_keys(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Drop wrapper prefixes from state-dict keys.

    * ``_orig_mod.`` segments (``torch.compile``) are removed wherever they appear, so a model
      compiled as a whole or per submodule both load.
    * a leading ``module.`` (``DistributedDataParallel`` / ``DataParallel``) is removed when
      every key carries it.
    """
    out = {}
    for key, value in state_dict.items():
        parts = [p for p in key.split(".") if p != "_orig_mod"]
        out[".".join(parts)] = value
    if out and all(k.startswith("module.") for k in out):
        out = {k[len("module.") :]: v for k, v in out.items()}
    return out


def load_weights(model: nn.Module, state_dict: Mapping[str, Tensor], *, variant_name: str) -> None:
    """Copy ``state_dict`` into ``model`` strictly (every key present, every shape equal).

    Args:
        model: the freshly built model of variant ``variant_name``.
        state_dict: as returned by :func:`read_state_dict` (prefixes are normalised again here).
        variant_name: the model's variant, used in error messages.

    Raises:
        CheckpointError: the checkpoint belongs to another registered variant (named in the
            message), or keys are missing / unexpected, or a tensor has the wrong shape.
    """
    state_dict = normalize_keys(state_dict)
    expected = _shapes(model.state_dict())
    found = _shapes(state_dict)
    if found != expected:
        raise CheckpointError(_mismatch_message(expected, found, variant_name))
    with torch.no_grad():
        model.load_state_dict(state_dict, strict=True)


def check_state_dict(state_dict: Mapping[str, Tensor], variant_name: str) -> None:
    """Check keys and shapes against a registered variant without building the real model
    (its signature comes from a model built once on the meta device).

    Raises:
        CheckpointError: as :func:`load_weights`.
    """
    from napari_sam2.model.config import get_config

    expected = dict(_signature(get_config(variant_name)))
    found = _shapes(normalize_keys(state_dict))
    if found != expected:
        raise CheckpointError(_mismatch_message(expected, found, variant_name))


def identify_variant(shapes: Mapping[str, tuple[int, ...]]) -> list[str]:
    """Names of the registered variants whose state dict has exactly these keys and shapes.

    Several names can match: ``medsam2`` and ``sam2.1_hiera_tiny`` differ only in image size,
    which changes no stored tensor.
    """
    from napari_sam2.model.config import VARIANTS

    target = frozenset((k, tuple(v)) for k, v in shapes.items())
    return [name for name, config in VARIANTS.items() if _signature(config) == target]


@functools.lru_cache(maxsize=None)
def _signature(config) -> frozenset[tuple[str, tuple[int, ...]]]:
    """(key, shape) pairs of a config's state dict, from a model built on the meta device
    (no memory, no initialisation cost)."""
    from napari_sam2.model import build_model

    with torch.device("meta"):
        model = build_model(config, device="meta")
    return frozenset(_shapes(model.state_dict()).items())


def _shapes(state_dict: Mapping[str, Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state_dict.items()}


def _mismatch_message(
    expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]], variant_name: str
) -> str:
    matches = [m for m in identify_variant(found) if m != variant_name]
    if matches:
        names = " / ".join(repr(m) for m in matches)
        return (
            f"This checkpoint is a {names} checkpoint, not {variant_name!r}. "
            f"Load it with load_model({matches[0]!r}, checkpoint=...), or choose the file made "
            f"for {variant_name!r}."
        )
    missing = sorted(expected.keys() - found.keys())
    unexpected = sorted(found.keys() - expected.keys())
    wrong = sorted(k for k in expected.keys() & found.keys() if expected[k] != found[k])
    lines = [f"The checkpoint does not fit the {variant_name!r} model and matches no other "
             "registered variant:"]
    if missing:
        lines.append(f"  {len(missing)} missing key(s), e.g. {_listing(missing)}")
    if unexpected:
        lines.append(f"  {len(unexpected)} unexpected key(s), e.g. {_listing(unexpected)}")
    if wrong:
        shown = ", ".join(
            f"{k}: file {found[k]} vs model {expected[k]}" for k in wrong[:_MAX_LISTED]
        )
        lines.append(f"  {len(wrong)} shape mismatch(es), e.g. {shown}")
    lines.append("Check that the file was made for this variant, or load it as the variant it "
                 "was made for.")
    return "\n".join(lines)


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    return shown + (", ..." if len(keys) > _MAX_LISTED else "")


def check_checkpoint_path(path: Path) -> None:
    """Raise FileNotFoundError (or IsADirectoryError) with what to do when ``path`` is not a
    file."""
    if path.is_dir():
        raise IsADirectoryError(
            f"The checkpoint {path} is a folder: choose the weights file inside it (a .pt, .pth "
            "or .safetensors file)"
        )
    if not path.is_file():
        raise FileNotFoundError(
            f"Checkpoint file not found: {path}; check the path, or leave the checkpoint out to "
            "use the variant's own weights (shipped or downloaded)"
        )


def _damaged(path: Path, detail: str) -> CheckpointError:
    return CheckpointError(
        f"The checkpoint file {path} is truncated or corrupt ({detail}). Delete it and download "
        "or copy it again (a cached official checkpoint is downloaded afresh once it is gone)."
    )


def _sniff_format(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(9)
    if head.startswith(_ZIP_MAGIC):
        return "torch-zip"
    if len(head) == 9 and head[8:9] == b"{":  # 8-byte little-endian header length, then JSON
        return "safetensors"
    if path.suffix == ".safetensors":
        return "safetensors"
    if head.startswith(_PICKLE_PROTO):
        return "torch-legacy"
    if not head:
        raise _damaged(path, "the file is empty")
    raise CheckpointError(
        f"The file {path} is not a checkpoint: it starts with {head[:8]!r}, which is neither a "
        "torch file (.pt/.pth) nor safetensors. Choose the weights file itself (Meta's .pt, or "
        "a .safetensors file written by napari-sam2), or download it again."
    )


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise _damaged(path, f"safetensors: {exc}") from exc


def _read_torch(path: Path, *, zip_format: bool) -> object:
    if zip_format:
        # torch.load does not check the archive's CRCs: a flipped byte would load silently.
        # A cut-off file has lost its central directory; a damaged one fails a CRC check.
        try:
            with zipfile.ZipFile(path) as archive:
                bad_member = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise _damaged(path, f"not a complete zip archive: {exc}") from exc
        if bad_member is not None:
            raise _damaged(path, f"checksum error in archive member {bad_member!r}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=zip_format)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc).lower() or "weights only" in str(exc).lower():
            raise CheckpointError(
                f"The checkpoint file {path} contains Python objects other than tensors. It was "
                "not loaded, because unpickling them could run arbitrary code. Use a file that "
                "holds only a state dict (as Meta's official checkpoints do), or convert it to "
                "safetensors with a tool you trust."
            ) from exc
        raise _damaged(path, str(exc).splitlines()[0]) from exc
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError,
            IndexError, TypeError, AttributeError) as exc:  # a damaged pickle raises any of them
        raise _damaged(path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc


def _unwrap(raw: object, path: Path) -> dict[str, Tensor]:
    state_dict = raw
    if isinstance(raw, Mapping):
        for key in _WRAPPER_KEYS:
            if isinstance(raw.get(key), Mapping):
                state_dict = raw[key]
                break
    if not isinstance(state_dict, Mapping) or not state_dict:
        raise CheckpointError(
            f"The checkpoint file {path} holds no state dict (found {_describe(raw)}). Expected "
            '{"model": state_dict}, {"state_dict": state_dict} or a bare state dict.'
        )
    bad = [k for k, v in state_dict.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(
            f"The checkpoint file {path} holds entries that are not tensors, e.g. "
            f"{_listing([str(k) for k in bad])}. Expected {{'model': state_dict}}, "
            "{'state_dict': state_dict} or a bare state dict of tensors."
        )
    return dict(state_dict)


def _describe(raw: object) -> str:
    if isinstance(raw, Mapping):
        return f"a dict with keys {_listing([str(k) for k in raw])}"
    return f"a {type(raw).__name__}"
