"""Take the docs/automatic.md screenshot: "Segment and track" on the cell time-lapse sample.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshot_everything.py

Opens the sample in a napari window, docks the SAM 2 widget with the shipped demo model,
presses *Segment and track* on frame 0 (every cell found, then propagated forward), shows a
later frame and saves ``docs/images/everything.png`` (palette-quantised, small).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from screenshot import ROOT, _save, _wait, open_sample


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "docs" / "images" / "everything.png"))
    parser.add_argument("--frames", type=int, default=16)
    args = parser.parse_args(argv)

    viewer, widget, app, _, kind = open_sample(args.frames, (1500, 1000))
    c = widget.controller
    _wait(app, c)
    widget._everything.track_button.click()
    _wait(app, c)
    c.go_to_frame(args.frames // 2)
    _wait(app, c)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _save(viewer, out, width=1200, colors=128)
    print(f"saved {out} ({out.stat().st_size / 1024:.0f} KB, sam2_demo {kind}); "
          f"{widget._status_label.text()}")
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
