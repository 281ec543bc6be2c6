"""Model loading from the widget: a real download from a local HTTP server, and prefetch."""

import functools
import http.server
import threading

import pytest

from tests.napari.conftest import square_stack, wait_idle


@pytest.fixture
def checkpoint_server(tmp_path, demo_model):
    import torch

    (tmp_path / "srv").mkdir()
    torch.save({"model": demo_model.state_dict()}, tmp_path / "srv" / "sam2_demo.pt")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "srv"))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/sam2_demo.pt"
    httpd.shutdown()
    httpd.server_close()


def test_load_button_downloads_with_progress_then_prefetches(
    make_napari_viewer, qtbot, monkeypatch, checkpoint_server
):
    from napari_sam2.model import download, loading

    # serve sam2_demo like an official checkpoint: not shipped, downloaded on first use
    monkeypatch.delitem(loading.SHIPPED_WEIGHTS, "sam2_demo")
    monkeypatch.setitem(download.CHECKPOINT_URLS, "sam2_demo", checkpoint_server)
    viewer = make_napari_viewer()
    viewer.add_image(square_stack(), name="img", contrast_limits=(400, 3200))
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2")
    c = widget.controller
    widget._model_combo.setCurrentText("sam2_demo")
    widget._device_combo.setCurrentText("cpu")
    c.go_to_frame(2)
    widget._load_button.click()
    assert not widget._load_button.isEnabled()  # busy while loading
    wait_idle(qtbot, c)
    assert c.sessions.model is not None and c.model_name == "sam2_demo"
    done, total = c.last_download
    assert total > 1_000_000 and done == total
    assert "ready" in widget._status_label.text()
    # the shown frame and its neighbours are encoded in the background right away
    qtbot.waitUntil(lambda: c.prefetcher.encoded_count >= 3, timeout=60_000)
    session = c.sessions.get(c.image_layer, c.current_ref(), create=False)
    assert session.memory_stats()["features"] > 0
    assert {(id(session), f) for f in (1, 2, 3)} <= set(c.prefetcher._done)
    # a new slice shown: its neighbourhood is prefetched too
    c.go_to_frame(5)
    qtbot.waitUntil(lambda: (id(session), 4) in c.prefetcher._done, timeout=60_000)


def test_offline_default_model_says_where_to_put_the_file(make_napari_viewer, qtbot, monkeypatch):
    import socket

    from napari_sam2.model import download

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there: like being offline
    monkeypatch.setitem(download.CHECKPOINT_URLS, "sam2.1_hiera_tiny",
                        f"http://127.0.0.1:{port}/sam2.1_hiera_tiny.pt")
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2")
    assert widget._model_combo.currentText() == "sam2.1_hiera_tiny"  # the default
    widget._load_button.click()
    wait_idle(qtbot, widget.controller)
    text = widget._status_label.text()
    assert "sam2.1_hiera_tiny.pt" in text and str(download.cache_dir_path()) in text
    assert widget.controller.sessions.model is None and widget._load_button.isEnabled()


@pytest.mark.parametrize("override", [None, "0", "1"])
def test_device_picker_says_bf16_where_the_cpu_runs_in_bfloat16(make_napari_viewer, monkeypatch,
                                                                override):
    from napari_sam2.engine.device import ENV_VAR

    if override is None:
        monkeypatch.delenv(ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(ENV_VAR, override)
    bf16 = override == "1"  # opt-in on the CPU (it then trusts the user, detected or not)
    _, widget = make_napari_viewer().window.add_plugin_dock_widget("napari-sam2", "SAM 2")
    combo = widget._device_combo
    items = {combo.itemText(i): combo.itemData(i) for i in range(combo.count())}
    assert items["cpu (bf16)" if bf16 else "cpu"] == "cpu"  # the label; the device loaded
    assert ("cpu" in items) is not bf16 and items["auto"] == "auto"
