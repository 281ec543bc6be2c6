"""Official checkpoint URLs, the per-user cache, downloads and sha256 records.

``checkpoint_path(name)`` returns the local file of a downloadable variant, downloading it
through pooch on first use. Guarantees:

* **Cache location:** the ``cache_dir`` argument, else ``$NAPARI_SAM2_CACHE``, else the
  platform's user cache (``pooch.os_cache("napari-sam2")``: ``~/.cache/napari-sam2`` on
  Linux, ``~/Library/Caches/napari-sam2`` on macOS,
  ``%LOCALAPPDATA%\\napari-sam2\\napari-sam2\\Cache`` on Windows).
* **Atomic writes:** pooch streams into a temporary file in the cache folder and renames it only
  when the transfer is complete, so an interrupted download never leaves a half file.
* **Integrity:** at first download (or first use of a file placed by hand) the file's sha256 is
  written to ``<file>.json`` beside it; every later call re-hashes the file and refuses it if the
  hash changed. Where a published hash is known (:data:`KNOWN_SHA256`) it is enforced too.
* **Offline:** a failed download raises :class:`CheckpointDownloadError` naming the URL and the
  exact path where the file can be placed by hand.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from napari_sam2._safe_write import file_in_the_way
from napari_sam2.errors import DamagedFileError, InvalidOptionError, NapariSam2Error

#: ``progress(downloaded_bytes, total_bytes)``; ``total_bytes`` is 0 when the server gives none.
ProgressCallback = Callable[[int, int], None]

ENV_CACHE = "NAPARI_SAM2_CACHE"

_META_2_0 = "https://dl.fbaipublicfiles.com/segment_anything_2/072824/"
_META_2_1 = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"

#: variant name -> download URL. Meta's from the official ``checkpoints/download_ckpts.sh`` and
#: README; MedSAM2's from the official MedSAM2 repository's download script (Hugging Face repo
#: ``wanglab/MedSAM2``, the file its README recommends). Tests patch this mapping.
CHECKPOINT_URLS: dict[str, str] = {
    "sam2_hiera_tiny": _META_2_0 + "sam2_hiera_tiny.pt",
    "sam2_hiera_small": _META_2_0 + "sam2_hiera_small.pt",
    "sam2_hiera_base_plus": _META_2_0 + "sam2_hiera_base_plus.pt",
    "sam2_hiera_large": _META_2_0 + "sam2_hiera_large.pt",
    "sam2.1_hiera_tiny": _META_2_1 + "sam2.1_hiera_tiny.pt",
    "sam2.1_hiera_small": _META_2_1 + "sam2.1_hiera_small.pt",
    "sam2.1_hiera_base_plus": _META_2_1 + "sam2.1_hiera_base_plus.pt",
    "sam2.1_hiera_large": _META_2_1 + "sam2.1_hiera_large.pt",
    "medsam2": "https://huggingface.co/wanglab/MedSAM2/resolve/main/MedSAM2_latest.pt",
}

#: variant name -> published sha256 of its file. Empty on purpose: no publisher states one that
#: we could verify here, and an invented value would reject the real file. Files are still
#: protected by the hash recorded at first download.
KNOWN_SHA256: dict[str, str] = {}

_CHUNK = 1 << 20


class CheckpointError(DamagedFileError):
    """A checkpoint file is damaged, of the wrong variant, or does not fit the model.

    Defined here so that this module (and the ``download`` CLI) imports without torch;
    :mod:`napari_sam2.model.checkpoint` re-exports it."""


class CheckpointDownloadError(NapariSam2Error, OSError):
    """A checkpoint could not be downloaded (offline, unreachable, HTTP error)."""


def cache_dir_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """The checkpoint cache folder: ``cache_dir``, else ``$NAPARI_SAM2_CACHE``, else the
    platform's per-user cache folder for ``napari-sam2``. Not created here.

    Raises:
        InvalidOptionError: the path (or a folder above it) exists but is a file.
    """
    if cache_dir is not None:
        path, source = Path(cache_dir).expanduser(), "the cache folder"
    elif os.environ.get(ENV_CACHE):
        path, source = Path(os.environ[ENV_CACHE]).expanduser(), f"${ENV_CACHE}"
    else:
        import pooch

        path, source = Path(pooch.os_cache("napari-sam2")), "the user cache folder"
    blocker = file_in_the_way(path)
    if blocker is not None:
        raise InvalidOptionError(
            f"{source} {path} cannot be used: {blocker} is a file, not a folder. Give a folder "
            f"(--cache-dir or ${ENV_CACHE}), or move that file away.")
    return path


def checkpoint_filename(name: str) -> str:
    """The file name a downloadable variant is cached under (the URL's last segment)."""
    return _url(name).rsplit("/", 1)[-1]


def checkpoint_path(
    name: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: ProgressCallback | bool | None = None,
) -> Path:
    """The verified local checkpoint file of variant ``name``, downloaded if not cached.

    Args:
        name: a variant with a download URL (see :data:`CHECKPOINT_URLS`).
        cache_dir: the cache folder (default: see :func:`cache_dir_path`).
        progress: ``None`` or ``True`` shows a tqdm bar on stderr; ``False`` shows nothing; a
            callable is called as ``progress(downloaded_bytes, total_bytes)`` while downloading.

    Raises:
        ValueError: ``name`` has no download URL.
        CheckpointDownloadError: the download failed; the message names the URL and the path
            where the file can be placed by hand.
        CheckpointError: the cached file's sha256 differs from the recorded or published one.
    """
    url = _url(name)
    path = cache_dir_path(cache_dir) / checkpoint_filename(name)
    if path.is_file():
        verify_checkpoint(name, path)
        return path
    _download(name, url, path, progress)
    digest = sha256_of(path)
    record = record_path(path)
    if not record.exists():
        _write_record(path, name=name, url=url, sha256=digest, source="download")
    verify_checkpoint(name, path, digest=digest)
    return path


def verify_checkpoint(name: str, path: Path, *, digest: str | None = None) -> str:
    """Check ``path`` against its sha256 record (written now if there is none) and against the
    published hash if known. Returns the file's sha256.

    Raises:
        CheckpointError: a hash differs; the message says to delete the file and re-download.
    """
    digest = digest or sha256_of(path)
    record = record_path(path)
    recorded = _read_record(record)
    if recorded is None:
        _write_record(path, name=name, url=CHECKPOINT_URLS.get(name), sha256=digest,
                      source="found in cache (placed by hand?)")
    elif recorded != digest:
        raise CheckpointError(
            f"The checkpoint file {path} has changed since it was first recorded: its sha256 is "
            f"{digest}, but {record} records {recorded}. The file is damaged or was replaced. "
            f"Delete both files and run again to download it afresh (or delete only {record.name} "
            "if you replaced the file on purpose)."
        )
    known = KNOWN_SHA256.get(name)
    if known is not None and known != digest:
        raise CheckpointError(
            f"The checkpoint file {path} is not the published {name!r} file: its sha256 is "
            f"{digest}, the published one is {known}. Delete {path} and {record} and run again "
            "to download it afresh."
        )
    return digest


def record_path(path: Path) -> Path:
    """The sha256 record beside a checkpoint: ``<file name>.json``."""
    return path.with_name(path.name + ".json")


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _url(name: str) -> str:
    if name not in CHECKPOINT_URLS:
        raise ValueError(
            f"No download is known for {name!r}. Downloadable variants: "
            f"{', '.join(CHECKPOINT_URLS)}. For other variants pass a local file as "
            "load_model(name, checkpoint=path)."
        )
    return CHECKPOINT_URLS[name]


def _download(name: str, url: str, path: Path, progress: ProgressCallback | bool | None) -> None:
    import pooch
    import requests

    if callable(progress):
        bar: object = _CallbackBar(progress)
    else:
        bar = progress is None or bool(progress)
    downloader = pooch.HTTPDownloader(progressbar=bar, chunk_size=_CHUNK, timeout=30)
    known = KNOWN_SHA256.get(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)  # pooch logs a hint about known_hash we handle ourselves
    try:
        pooch.retrieve(
            url,
            known_hash=f"sha256:{known}" if known else None,
            fname=path.name,
            path=path.parent,
            downloader=downloader,
        )
    except requests.exceptions.RequestException as exc:
        raise CheckpointDownloadError(
            f"Could not download the {name!r} checkpoint from {url} ({type(exc).__name__}: "
            f"{exc}). If this machine is offline, download that URL elsewhere and put the file "
            f"at exactly {path} (or pass checkpoint=<file> to load_model)."
        ) from exc
    except ValueError as exc:  # pooch: hash of the downloaded file differs from the known one
        raise CheckpointError(
            f"The file downloaded from {url} does not have the published sha256 of {name!r} "
            f"({exc}). Nothing was saved; try again later or report it."
        ) from exc
    finally:
        logger.setLevel(level)


class _CallbackBar:
    """The minimal progress-bar protocol pooch drives (total, update, reset, close), turned
    into ``progress(downloaded_bytes, total_bytes)`` calls."""

    def __init__(self, callback: ProgressCallback):
        self._callback = callback
        self.total = 0
        self._done = 0

    def update(self, n: int) -> None:
        self._done += n
        done = min(self._done, self.total) if self.total else self._done
        self._callback(done, self.total)

    def reset(self) -> None:
        self._done = 0

    def close(self) -> None:
        pass


def _read_record(record: Path) -> str | None:
    if not record.is_file():
        return None
    try:
        value = json.loads(record.read_text())["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"The checksum record {record} is unreadable ({exc}). Delete it and the checkpoint "
            "beside it and run again to download afresh."
        ) from exc
    return str(value)


def _write_record(path: Path, *, name: str, url: str | None, sha256: str, source: str) -> None:
    content = {
        "variant": name,
        "file": path.name,
        "url": url,
        "sha256": sha256,
        "size_bytes": path.stat().st_size,
        "recorded_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "source": source,
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(content, f, indent=2)
        os.replace(tmp, record_path(path))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
