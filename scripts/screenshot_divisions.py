"""Take the screenshot of docs/plugin.md's "Cell divisions and tracks" (needs an X server).

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshot_divisions.py

Opens a synthetic time-lapse of dividing cells (``make_dividing_timelapse``, 24 frames, 4
cells), docks the SAM 2 widget with the shipped demo model, clicks each cell on frame 0 and
propagates forward with *find cell divisions* on (the default along t), then shows a late frame
with the Tracks layer and saves ``docs/images/divisions.png`` (palette-quantised, as
``scripts/screenshot.py`` does).
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load(path: Path):
    """A module from a script file (scripts/ and benchmarks/ are not packages)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "docs" / "images" / "divisions.png"))
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=int, default=1000)
    args = parser.parse_args(argv)

    save = _load(ROOT / "scripts" / "screenshot.py")._save
    clicked_viewer = _load(ROOT / "benchmarks" / "bench_tracks_layer.py").clicked_viewer
    viewer, widget, idle, _ = clicked_viewer(args.frames, 4, args.seed)
    viewer.window._qt_window.resize(1500, 950)
    c = widget.controller
    widget._propagate_button.click()
    idle()
    c.go_to_frame(args.frames - 1)
    viewer.reset_view()
    viewer.layers.selection.active = c.tracks.layer
    c.tracks.layer.tail_width = 4
    idle()
    print(widget._status_label.text())
    save(viewer, Path(args.out), args.width, 128)
    print(f"saved {args.out}")
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
