"""The plugin's window setting and multiscale levels (issue 19), Qt-free.

* ``WINDOW_MODES``: the widget's choices; ``window_setting(mode, pixels)`` turns them into the
  engine's ``window`` (None = whole frame, ``"auto"``, or a side in pixels).
* ``stack_levels(layer, ref)``: the coarser levels of a multiscale image layer as
  ``FrameStack``s of the same stack, for ``TrackingSession(levels=...)``: a window is then read
  from the level that matches its pixel size instead of always level 0. Levels that also
  shrink a non-spatial axis (t, z) are left out (their frames would not line up).
"""

from __future__ import annotations

from napari_sam2._napari._stack import FrameStack, StackRef

WINDOW_MODES = ("whole frame", "auto (from the object)", "pixels")
DEFAULT_WINDOW_PIXELS = 256


def window_setting(mode: str, pixels: int = DEFAULT_WINDOW_PIXELS):
    """The engine's ``window`` for a widget choice: None, ``"auto"`` or ``pixels``."""
    if mode == WINDOW_MODES[0]:
        return None
    if mode == WINDOW_MODES[1]:
        return "auto"
    if mode == WINDOW_MODES[2]:
        return int(pixels)
    raise ValueError(f"window mode must be one of {WINDOW_MODES}, got {mode!r}")


def stack_levels(layer, ref: StackRef) -> list[FrameStack]:
    """The coarser levels (level 1 on) of a multiscale ``layer`` as frame stacks of ``ref``."""
    if not getattr(layer, "multiscale", False):
        return []
    rgb = bool(getattr(layer, "rgb", False))
    levels = list(layer.data)
    cut = -3 if rgb else -2
    lead = tuple(levels[0].shape[:cut])
    return [FrameStack(level, ref, rgb=rgb) for level in levels[1:]
            if tuple(level.shape[:cut]) == lead]
