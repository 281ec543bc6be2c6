"""The image predictor's window mode: an image kept unread, each prompt encoded in its window.

``ImagePredictor.set_image(image, window="auto" | side)`` makes a ``WindowedImage``: the image
(numpy, dask, zarr, or a list of levels of a multiscale image) is kept, not read; each
``predict`` picks the window its prompt needs (``windows.py``), reads and encodes only that
window (the last few encodings are kept, so more clicks on the same object cost only the
decoder), and returns masks of the window with the window that places them in the frame.

How the window is chosen:

* a side in pixels: a square of that side centred on the prompt (grown to hold all of it);
* ``"auto"`` with a box: ``CONTEXT`` times the box's longest side;
* ``"auto"`` with clicks: a first window of ``FIRST_SIDE * S`` px (the model's input at native
  pixel size) around the clicks; the mask found there gives the object's size, and the click is
  answered again in a window of ``CONTEXT`` times that size (twice the first, when the mask
  runs into its border) unless that is the same window;
* a ``mask_input`` refines the previous prediction, in the previous window.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict

import numpy as np

from napari_sam2.engine import transforms as T
from napari_sam2.engine.prompts import check_box, check_points
from napari_sam2.engine.types import MaskPrediction
from napari_sam2.engine.windows import (
    FIRST_SIDE,
    PlaneLevels,
    Window,
    check_window,
    mask_box,
    side_for_extent,
    touches_border,
    window_covering,
)

#: Window encodings kept per image (16 MiB each for an official model).
KEEP_ENCODINGS = 4


class WindowedImage:
    """An image answered window by window (see the module docstring).

    Args:
        image: (H, W) or (H, W, 3) array-like, or a list of them (level 0 first).
        window: ``"auto"`` or a side in pixels (``windows.check_window``).
        intensity_range: (lo, hi) mapped to 0 and 1; None: each window by its own min / max.
    """

    def __init__(self, image, window, intensity_range=None) -> None:
        self.levels = PlaneLevels(image)
        shape = self.levels.planes[0].shape
        if len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] not in (1, 3)):
            raise ValueError(f"image has shape {shape}: pass (H, W) grey or (H, W, 3) RGB")
        self.setting = check_window(window)
        if self.setting is None:
            raise ValueError("window=None is the whole-frame mode: call set_image without it")
        self.intensity_range = T.check_intensity_range(intensity_range)
        self.frame_shape = self.levels.frame_shape
        self.last: Window | None = None
        self.reads: list[tuple[Window, int]] = []  # (window, level) of every read
        self._encodings: OrderedDict[Window, object] = OrderedDict()

    def embedding(self, predictor, window: Window):
        """The ``ImageEmbedding`` of ``window`` (``original_size`` = the window's size)."""
        emb = self._encodings.get(window)
        if emb is None:
            pixels, level = self.levels.read(window, predictor.image_size)
            self.reads.append((window, level))
            emb = predictor.encode(T.check_image(pixels, f"window {window.box}"),
                                   intensity_range=self.intensity_range)
            emb = dataclasses.replace(emb, original_size=window.shape)
            self._encodings[window] = emb
            while len(self._encodings) > KEEP_ENCODINGS:
                self._encodings.popitem(last=False)
        self._encodings.move_to_end(window)
        return emb

    def predict(self, predictor, *, points, labels, box, mask_input,
                multimask_output: bool) -> MaskPrediction:
        """``ImagePredictor.predict`` in a window; prompts in frame pixels."""
        hw = self.frame_shape
        pts, lbl = check_points(points, labels, hw)
        bx = check_box(box, hw)
        if mask_input is not None and self.last is not None:
            return self._run(predictor, self.last, pts, lbl, bx, mask_input, multimask_output)
        if pts is None and bx is None:
            raise ValueError("no prompt: pass points (with labels) or a box; a mask_input alone "
                             "needs an earlier prediction (its window)")
        extent = prompt_extent(pts, lbl, bx)
        if self.setting != "auto":
            window = window_covering(extent, self.setting, hw)
            return self._run(predictor, window, pts, lbl, bx, mask_input, multimask_output)
        if bx is not None:
            side = side_for_extent((bx[2] - bx[0], bx[3] - bx[1]))
            return self._run(predictor, window_covering(extent, side, hw), pts, lbl, bx,
                             mask_input, multimask_output)
        first = window_covering(extent, int(FIRST_SIDE * predictor.image_size), hw)
        pred = self._run(predictor, first, pts, lbl, bx, mask_input, multimask_output)
        found = mask_box(pred.best)
        if found is None:
            return pred
        side = side_for_extent((found[2] - found[0], found[3] - found[1]))
        if touches_border(found, first.shape):
            side = max(side, 2 * max(first.shape))
        r0, c0, r1, c1 = found
        obj = (min(extent[0], r0 + first.top), min(extent[1], c0 + first.left),
               max(extent[2], r1 + first.top), max(extent[3], c1 + first.left))
        window = window_covering(obj, side, hw)
        if window == first:
            return pred
        return self._run(predictor, window, pts, lbl, bx, mask_input, multimask_output)

    def _run(self, predictor, window: Window, pts, lbl, bx, mask_input, multimask_output):
        emb = self.embedding(predictor, window)
        pred = predictor.predict(
            points=None if pts is None else window.to_local(pts), labels=lbl,
            box=None if bx is None else window.box_to_local(bx), mask_input=mask_input,
            multimask_output=multimask_output, embedding=emb)
        self.last = window
        return dataclasses.replace(pred, window=window)


def prompt_extent(pts, lbl, bx) -> tuple[float, float, float, float]:
    """(r0, c0, r1, c1) around the box and the positive clicks (all clicks if none is)."""
    spans = []
    if bx is not None:
        spans.append(np.asarray(bx, np.float64).reshape(2, 2))
    if pts is not None:
        pos = pts[lbl == 1] if (lbl == 1).any() else pts
        spans.append(np.asarray(pos, np.float64))
    allp = np.concatenate(spans)
    lo, hi = allp.min(0), allp.max(0)
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])
