"""Downloads against a real HTTP server on 127.0.0.1: progress, atomic writes, sha256 records,
tampering, offline errors. No test touches the internet: the URL table is patched."""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import threading
from pathlib import Path

import pytest

from napari_sam2.model import download
from napari_sam2.model.checkpoint import CheckpointError
from napari_sam2.model.download import (
    CheckpointDownloadError,
    cache_dir_path,
    checkpoint_path,
    record_path,
)

NAME = "sam2.1_hiera_tiny"
PAYLOAD = bytes(range(256)) * 12_289  # ~3.1 MB: several 1 MiB chunks, not a multiple of one


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD at /good.pt, half of it with the full Content-Length at /cut.pt (the
    connection drops mid-transfer), and 404 elsewhere."""

    def do_GET(self):  # noqa: N802 (http.server API)
        self.server.hits.append(self.path)
        if self.path not in ("/good.pt", "/cut.pt"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        body = PAYLOAD if self.path == "/good.pt" else PAYLOAD[: len(PAYLOAD) // 2]
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.hits = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def closed_port_url():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now: connection refused
    return f"http://127.0.0.1:{port}/sam2.1_hiera_tiny.pt"


def _serve(monkeypatch, url):
    monkeypatch.setitem(download.CHECKPOINT_URLS, NAME, url)


def test_download_reports_progress_and_records_sha256(server, monkeypatch, tmp_path):
    httpd, base = server
    _serve(monkeypatch, base + "/good.pt")
    calls = []
    path = checkpoint_path(NAME, cache_dir=tmp_path, progress=lambda d, t: calls.append((d, t)))

    assert path == tmp_path / "good.pt"
    assert path.read_bytes() == PAYLOAD
    assert len(calls) >= 3
    assert all(t == len(PAYLOAD) for _, t in calls)
    done = [d for d, _ in calls]
    assert done[-1] == len(PAYLOAD)
    assert all(0 < d <= len(PAYLOAD) for d in done)
    record = json.loads(record_path(path).read_text())
    assert record["sha256"] == hashlib.sha256(PAYLOAD).hexdigest()
    assert record["url"] == base + "/good.pt"
    assert record["size_bytes"] == len(PAYLOAD)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.pt", "good.pt.json"]


def test_cached_file_is_verified_without_network(server, monkeypatch, tmp_path, closed_port_url):
    httpd, base = server
    _serve(monkeypatch, base + "/good.pt")
    path = checkpoint_path(NAME, cache_dir=tmp_path, progress=False)
    assert httpd.hits == ["/good.pt"]
    # the server is still up, but a second call must not download again
    assert checkpoint_path(NAME, cache_dir=tmp_path, progress=False) == path
    assert httpd.hits == ["/good.pt"]


def test_tampered_file_is_detected(server, monkeypatch, tmp_path):
    _, base = server
    _serve(monkeypatch, base + "/good.pt")
    path = checkpoint_path(NAME, cache_dir=tmp_path, progress=False)
    data = bytearray(path.read_bytes())
    data[1000] ^= 0xFF  # same size, one byte changed
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError) as info:
        checkpoint_path(NAME, cache_dir=tmp_path, progress=False)
    message = str(info.value)
    assert str(path) in message and "Delete" in message
    assert hashlib.sha256(PAYLOAD).hexdigest() in message


def test_interrupted_transfer_leaves_no_file(server, monkeypatch, tmp_path):
    _, base = server
    _serve(monkeypatch, base + "/cut.pt")
    with pytest.raises(CheckpointDownloadError) as info:
        checkpoint_path(NAME, cache_dir=tmp_path, progress=False)
    assert base + "/cut.pt" in str(info.value)
    assert list(tmp_path.iterdir()) == []  # neither the file, a temporary nor a record


def test_offline_error_names_url_and_manual_path(monkeypatch, tmp_path, closed_port_url):
    _serve(monkeypatch, closed_port_url)
    with pytest.raises(CheckpointDownloadError) as info:
        checkpoint_path(NAME, cache_dir=tmp_path, progress=False)
    message = str(info.value)
    assert closed_port_url in message
    assert str(tmp_path / "sam2.1_hiera_tiny.pt") in message
    assert list(tmp_path.iterdir()) == []


def test_http_error_is_a_download_error(server, monkeypatch, tmp_path):
    _, base = server
    _serve(monkeypatch, base + "/missing.pt")
    with pytest.raises(CheckpointDownloadError, match="404"):
        checkpoint_path(NAME, cache_dir=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_manually_placed_file_is_used_and_recorded(monkeypatch, tmp_path, closed_port_url):
    _serve(monkeypatch, closed_port_url)
    placed = tmp_path / "sam2.1_hiera_tiny.pt"
    placed.write_bytes(PAYLOAD)
    assert checkpoint_path(NAME, cache_dir=tmp_path, progress=False) == placed
    record = json.loads(record_path(placed).read_text())
    assert record["sha256"] == hashlib.sha256(PAYLOAD).hexdigest()
    placed.write_bytes(PAYLOAD[:-1])
    with pytest.raises(CheckpointError, match="changed since it was first recorded"):
        checkpoint_path(NAME, cache_dir=tmp_path, progress=False)


def test_known_hash_is_enforced(server, monkeypatch, tmp_path):
    _, base = server
    _serve(monkeypatch, base + "/good.pt")
    monkeypatch.setitem(download.KNOWN_SHA256, NAME, "0" * 64)
    with pytest.raises(CheckpointError, match="published sha256"):
        checkpoint_path(NAME, cache_dir=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setitem(download.KNOWN_SHA256, NAME, hashlib.sha256(PAYLOAD).hexdigest())
    path = checkpoint_path(NAME, cache_dir=tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD


def test_tqdm_bar_is_the_default(server, monkeypatch, tmp_path, capsys):
    _, base = server
    _serve(monkeypatch, base + "/good.pt")
    checkpoint_path(NAME, cache_dir=tmp_path)
    assert "100%" in capsys.readouterr().err


def test_cache_dir_argument_then_env_then_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("NAPARI_SAM2_CACHE", str(tmp_path / "env"))
    assert cache_dir_path(tmp_path / "arg") == tmp_path / "arg"
    assert cache_dir_path() == tmp_path / "env"
    monkeypatch.delenv("NAPARI_SAM2_CACHE")
    assert cache_dir_path().name.lower().startswith("napari-sam2") or "napari-sam2" in str(
        cache_dir_path()
    )


def test_env_cache_is_used_by_checkpoint_path(server, monkeypatch, tmp_path):
    _, base = server
    _serve(monkeypatch, base + "/good.pt")
    monkeypatch.setenv("NAPARI_SAM2_CACHE", str(tmp_path / "from-env"))
    assert checkpoint_path(NAME, progress=False) == tmp_path / "from-env" / "good.pt"


def test_unknown_name_lists_downloadable_variants(tmp_path):
    with pytest.raises(ValueError, match="sam2.1_hiera_large"):
        checkpoint_path("sam2_demo", cache_dir=tmp_path)


def test_every_official_variant_and_medsam2_has_a_url():
    from napari_sam2.model.config import VARIANTS

    official = [n for n in VARIANTS if n.startswith(("sam2_hiera", "sam2.1_hiera"))]
    assert len(official) == 8
    assert set(download.CHECKPOINT_URLS) == {*official, "medsam2"}
    for name in official:
        assert download.CHECKPOINT_URLS[name].endswith(f"/{name}.pt")
        assert download.CHECKPOINT_URLS[name].startswith("https://dl.fbaipublicfiles.com/")
    assert download.checkpoint_filename("medsam2") == "MedSAM2_latest.pt"


def test_cli_downloads_and_lists(server, monkeypatch, tmp_path, capsys):
    from napari_sam2.cli import main

    _, base = server
    _serve(monkeypatch, base + "/good.pt")
    assert main(["download", NAME, "--cache-dir", str(tmp_path)]) == 0
    assert str(tmp_path / "good.pt") in capsys.readouterr().out
    assert main(["download", "--list", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "cached" in out and "medsam2" in out
    assert main(["download", "nonsense", "--cache-dir", str(tmp_path)]) == 2


def test_cli_offline_error_exits_1(monkeypatch, tmp_path, closed_port_url, capsys):
    from napari_sam2.cli import main

    _serve(monkeypatch, closed_port_url)
    assert main(["download", NAME, "--cache-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert closed_port_url in err and str(tmp_path) in err


def test_record_is_written_atomically(tmp_path):
    target = tmp_path / "w.pt"
    target.write_bytes(b"x")
    download._write_record(target, name=NAME, url=None, sha256="ab", source="test")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.pt", "w.pt.json"]
    assert json.loads(Path(record_path(target)).read_text())["sha256"] == "ab"


def test_download_module_and_cli_parser_import_without_torch():
    import subprocess
    import sys

    code = (
        "import argparse, sys; from napari_sam2.model import download, download_cli; "
        "download_cli.add_arguments(argparse.ArgumentParser()); "
        "sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
