"""Where each object's window lies in a ``TrackingSession`` with windows (docs/tracking.md,
*Windows*).

* ``prompt_window``: the window of a prompt. A prompt inside the window the object already has
  on that frame reuses it (its earlier logits stay a valid mask input); otherwise the window is
  centred on the prompt with the object's side (fixed at its first prompt: the user's side, or
  from the object's size as in the image predictor's ``"auto"``).
* ``follow_window``: the window of a tracked frame: the object's side, centred on its mask in
  the frame it comes from (in the direction of travel), moved by whole steps of the feature
  grid (side / (S / 16) px), grown by half when that mask reaches the window's border.

Windows are squares on a grid of one feature cell, so that a window moves its memories by whole
tokens and objects close together get the same window and share its encoding.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from napari_sam2.engine.object_track import FrameOutput, ObjectTrack, PointPrompt
from napari_sam2.engine.windows import (
    FIRST_SIDE,
    Window,
    side_for_extent,
    window_around,
    window_covering,
)

GROW = 1.5  # a window whose object reaches its border grows by this factor
#: How a window follows its object (measured in benchmarks/bench_windows.py --follow):
#: "grid": re-centred on the last mask every frame, moved by whole feature cells (default);
#: "pixel": re-centred to the pixel; "fixed": kept where it is until the mask comes within a
#: quarter of the window of its border, then re-centred (grid steps).
FOLLOW = "grid"


def grid_step(side: int, image_size: int, stride: int = 16) -> int:
    """Frame pixels per feature cell of a window of ``side`` (its re-centring step)."""
    return max(1, int(round(side * stride / image_size)))


def low_res_box(out: FrameOutput, frame_hw) -> tuple[tuple[int, int, int, int], bool] | None:
    """Bounding box (r0, c0, r1, c1) in frame pixels of ``out``'s mask (logits > 0) and
    whether it reaches a border of the window that is not the frame's; None when the mask is
    empty."""
    low = out.low_res[0, 0].float().cpu().numpy() > 0
    rows = np.flatnonzero(low.any(1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(low.any(0))
    grid = (rows[0], cols[0], rows[-1] + 1, cols[-1] + 1)
    win = out.window
    gh, gw = low.shape
    fy, fx = win.height / gh, win.width / gw
    box = (int(win.top + grid[0] * fy), int(win.left + grid[1] * fx),
           int(np.ceil(win.top + grid[2] * fy)), int(np.ceil(win.left + grid[3] * fx)))
    t, l, b, r = win.box
    inner = (t > 0 and grid[0] < 1, l > 0 and grid[1] < 1,
             b < frame_hw[0] and grid[2] > gh - 1, r < frame_hw[1] and grid[3] > gw - 1)
    return box, any(inner)


def move_prompt(prompt: PointPrompt, src: Window, dst: Window, image_size: int) -> PointPrompt:
    """Points in model pixels (x, y) of window ``src`` -> the same points in window ``dst``."""
    S = float(image_size)
    xy = prompt.coords.astype(np.float64)
    col = xy[:, 0] / S * src.width + src.left - dst.left
    row = xy[:, 1] / S * src.height + src.top - dst.top
    moved = np.stack([col / dst.width * S, row / dst.height * S], axis=1).astype(np.float32)
    return PointPrompt(moved, prompt.labels)


def _inside(box, window: Window) -> bool:
    t, l, b, r = window.box
    return box[0] >= t and box[1] >= l and box[2] <= b and box[3] <= r


def prompt_window(setting, track: ObjectTrack, frame: int, extent, frame_hw,
                  image_size: int, run: Callable[[Window], tuple], *, clicks: bool):
    """Run a prompt in its window; -> (run's result, the window, the object's side).

    Args:
        setting: ``"auto"`` or a side in pixels.
        extent: (r0, c0, r1, c1) of the prompt (box, positive clicks, or the mask's box).
        run: window -> (FrameOutput, commit); called once, or twice for an ``"auto"`` click.
        clicks: the prompt is clicks only (``"auto"`` then measures the object first).
    """
    prev = track.output(frame)
    if prev is not None and prev.window is not None and _inside(extent, prev.window):
        return run(prev.window), prev.window, track.side
    side = track.side if track.side is not None else (
        setting if setting != "auto" else None)
    if side is None and not clicks:
        side = side_for_extent((extent[2] - extent[0], extent[3] - extent[1]))
    if side is not None:
        window = window_covering(extent, side, frame_hw,
                                 step=grid_step(side, image_size))
        return run(window), window, side
    first_side = int(FIRST_SIDE * image_size)
    first = window_covering(extent, first_side, frame_hw, step=grid_step(first_side, image_size))
    result = run(first)
    found = low_res_box(result[0], frame_hw)
    if found is None:
        return result, first, max(first.shape)
    box, at_border = found
    side = side_for_extent((box[2] - box[0], box[3] - box[1]))
    if at_border:
        side = max(side, 2 * max(first.shape))
    obj = (min(extent[0], box[0]), min(extent[1], box[1]),
           max(extent[2], box[2]), max(extent[3], box[3]))
    window = window_covering(obj, side, frame_hw, step=grid_step(side, image_size))
    if window == first:
        return result, first, side
    return run(window), window, side


def follow_window(track: ObjectTrack, frame: int, reverse: bool, frame_hw,
                  image_size: int) -> Window:
    """The window of ``track`` on ``frame`` during a propagation (see the module docstring);
    grows ``track.side`` when the object reaches its border."""
    frames = track.frames_with_output()
    before = [f for f in frames if (f > frame if reverse else f < frame)]
    source = (min(before) if reverse else max(before)) if before else \
        min(frames, key=lambda f: abs(f - frame))
    out = track.output(source)
    side = track.side or max(out.window.shape)
    found = low_res_box(out, frame_hw)
    if found is None:  # not visible there: look where it was
        return out.window
    box, at_border = found
    if at_border and side < max(frame_hw):
        side = int(np.ceil(side * GROW))
    elif FOLLOW == "fixed" and side == track.side and _inside(box, _shrunk(out.window)):
        return out.window
    centre = ((box[0] + box[2] - 1) / 2, (box[1] + box[3] - 1) / 2)
    track.side = side
    step = 1 if FOLLOW == "pixel" else grid_step(side, image_size)
    return window_around(centre, side, frame_hw, step=step)


def _shrunk(window: Window) -> Window:
    """``window`` less a quarter of its size on each side."""
    dh, dw = window.height // 4, window.width // 4
    return Window(window.top + dh, window.left + dw, window.height - 2 * dh,
                  window.width - 2 * dw)
