"""The prompt layers the widget manages: a Points layer for clicks and a Shapes layer for boxes.

Both layers copy the image layer's scale, translate and affine, so their data coordinates are
the image's pixel coordinates: a click in world coordinates lands on the right pixel.

Clicks on the Points layer (pan/zoom mode, the layer selected): left-click adds a positive
point, Alt+left-click or right-click a negative one; a drag pans as usual and adds nothing.
Each point carries the features ``obj_id`` and ``positive``; the layer *is* the prompt store.
Rectangles drawn on the Shapes layer become box prompts of the current object.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

POINTS_NAME = "SAM prompts"
BOXES_NAME = "SAM boxes"
POSITIVE_COLOR = (0.1, 1.0, 0.2, 1.0)
NEGATIVE_COLOR = (1.0, 0.15, 0.15, 1.0)
CLICK_TOLERANCE_PX = 4  # a press and release further apart than this is a drag, not a click


def is_negative_click(event) -> bool:
    """Right button, or the Alt key held: a negative (background) click."""
    return event.button == 2 or "Alt" in {str(getattr(m, "name", m)) for m in event.modifiers}


class PromptLayers:
    """Creates, finds and reads the prompt layers of one image layer.

    Args:
        viewer: the napari viewer.
        on_point: called with (data coords (ndim,), positive) after a click added a point.
        on_box: called with (vertices (4, ndim) data coords) after a rectangle was drawn.
        on_removed: called with [(data coords (ndim,), obj_id)] after the user deleted points
            or boxes (a box by its first vertex).
    """

    def __init__(
        self, viewer, on_point: Callable, on_box: Callable, on_removed: Callable | None = None
    ):
        self.viewer = viewer
        self.on_point = on_point
        self.on_box = on_box
        self.on_removed = on_removed
        self._removing: list[tuple[np.ndarray, int]] = []  # points being deleted
        self._removing_boxes: list[tuple[np.ndarray, int]] = []  # (first vertex, obj_id)
        self._quiet = False
        self.points = None
        self.boxes = None
        self.obj_id = 1

    # ----------------------------------------------------------------- layers
    def attach(self, image_layer, ndim: int) -> None:
        """Make (or reuse) prompt layers matching ``image_layer`` (``ndim`` non-channel dims),
        drawn above every other layer. Layers of another dimensionality are replaced."""
        shape = tuple(image_layer.data[0].shape if getattr(image_layer, "multiscale", False)
                      else image_layer.data.shape)[:ndim]
        geometry = {
            "scale": tuple(image_layer.scale)[-ndim:],
            "translate": tuple(image_layer.translate)[-ndim:],
        }
        for layer in (self.points, self.boxes):
            if layer is not None and layer in self.viewer.layers and layer.ndim != ndim:
                self._quiet = True
                try:
                    self.viewer.layers.remove(layer)
                finally:
                    self._quiet = False
        size = point_size(shape)
        if self.points is None or self.points not in self.viewer.layers or self.points.ndim != ndim:
            self.points = self.viewer.add_points(
                np.empty((0, ndim)), ndim=ndim, name=POINTS_NAME, size=size, border_width=0.15,
                border_color="white",
                features={"obj_id": np.empty(0, int), "positive": np.empty(0, bool)},
                **geometry,
            )
            self.points.feature_defaults = {"obj_id": self.obj_id, "positive": True}
            self.points.mouse_drag_callbacks.append(self._on_mouse)
            self.points.events.data.connect(self._on_points_data)
        else:
            self.points.scale, self.points.translate = geometry["scale"], geometry["translate"]
            self.points.current_size = size
        if self.boxes is None or self.boxes not in self.viewer.layers or self.boxes.ndim != ndim:
            self.boxes = self.viewer.add_shapes(
                ndim=ndim, name=BOXES_NAME, edge_color="yellow", face_color="transparent",
                edge_width=1.5, features={"obj_id": np.empty(0, int)}, **geometry,
            )
            self.boxes.feature_defaults = {"obj_id": self.obj_id}
            self.boxes.events.data.connect(self._on_shapes_data)
        else:
            self.boxes.scale, self.boxes.translate = geometry["scale"], geometry["translate"]
        self.raise_to_top()

    def raise_to_top(self) -> None:
        """Draw the prompt layers above all others (boxes, then points on top)."""
        layers = self.viewer.layers
        for layer in (self.boxes, self.points):
            if layer is not None and layer in layers and layers.index(layer) != len(layers) - 1:
                layers.move(layers.index(layer), len(layers))

    # ----------------------------------------------------------------- per image
    def snapshot(self) -> dict:
        """The prompts now in the layers (data and features), for ``restore``."""
        out = {}
        for key, layer in (("points", self.points), ("boxes", self.boxes)):
            if layer is not None and layer in self.viewer.layers and len(layer.data):
                out[key] = ([np.array(d) for d in layer.data] if key == "boxes"
                            else np.array(layer.data), layer.features.copy())
        return out

    def clear(self) -> None:
        """Empty both prompt layers (no re-segmentation is triggered)."""
        for layer in (self.points, self.boxes):
            if layer is not None and layer in self.viewer.layers and len(layer.data):
                self._remove_quietly(layer, set(range(len(layer.data))))

    def restore(self, snapshot: dict | None) -> None:
        """Put back the prompts of a ``snapshot`` (into layers ``attach`` made)."""
        self.clear()
        if not snapshot:
            return
        self._quiet = True
        try:
            if "points" in snapshot:
                data, features = snapshot["points"]
                self.points.data = data
                self.points.features = features.reset_index(drop=True)
                self._recolor()
            if "boxes" in snapshot:
                data, features = snapshot["boxes"]
                self.boxes.add_rectangles(data)
                self.boxes.features = features.reset_index(drop=True)
        finally:
            self._quiet = False

    def set_object(self, obj_id: int) -> None:
        self.obj_id = int(obj_id)
        for layer in (self.points, self.boxes):
            if layer is not None:
                table = layer.feature_defaults
                defaults = dict(table.iloc[0]) if len(table) else {}
                defaults["obj_id"] = self.obj_id
                layer.feature_defaults = defaults

    def activate_points(self) -> None:
        if self.points is not None and self.points in self.viewer.layers:
            self.points.mode = "pan_zoom"
            self.viewer.layers.selection.active = self.points

    # ----------------------------------------------------------------- input
    def add_point(self, coords, positive: bool) -> None:
        """Add a prompt point at data ``coords`` for the current object, then notify."""
        coords = np.asarray(coords, float)
        n = len(self.points.data)
        self.points.add(coords[None])
        self.points.features.loc[n, "obj_id"] = self.obj_id
        self.points.features.loc[n, "positive"] = bool(positive)
        self._recolor()
        self.on_point(coords, bool(positive))

    def remove_last_point(self) -> None:
        if self.points is not None and len(self.points.data):
            self._remove_quietly(self.points, {len(self.points.data) - 1})

    def _remove_quietly(self, layer, indices: set[int]) -> None:
        self._quiet = True
        try:
            layer.selected_data = indices
            layer.remove_selected()
        finally:
            self._quiet = False

    def _on_points_data(self, event) -> None:
        """The user deleted prompt points: report (coords, obj_id) of each, after removal."""
        action = str(getattr(event, "action", "")).lower()
        if self._quiet or self.on_removed is None:
            return
        if action.endswith("removing"):
            ids = self.points.features["obj_id"].to_numpy(int)
            idx = sorted(getattr(event, "data_indices", ()) or ())
            self._removing = [(np.asarray(self.points.data[i], float), int(ids[i])) for i in idx]
        elif action.endswith("removed") and self._removing:
            removed, self._removing = self._removing, []
            self.on_removed(removed)

    def _recolor(self) -> None:
        positive = self.points.features["positive"].to_numpy(bool)
        colors = np.where(positive[:, None], POSITIVE_COLOR, NEGATIVE_COLOR)
        self.points.face_color = colors if len(colors) else self.points.face_color

    def _on_mouse(self, layer, event):
        if layer.mode != "pan_zoom" or event.type != "mouse_press":
            return
        press_pos = np.asarray(event.pos, float)
        world = tuple(event.position)
        negative = is_negative_click(event)
        yield
        while event.type == "mouse_move":
            yield
        if np.abs(np.asarray(event.pos, float) - press_pos).max() > CLICK_TOLERANCE_PX:
            return  # that was a pan
        self.add_point(layer.world_to_data(world), not negative)

    def _on_shapes_data(self, event) -> None:
        """A rectangle added (drawn, once finished) is a box prompt; deleted boxes are reported
        like deleted points."""
        if self._quiet:
            return
        action = str(getattr(event, "action", "")).lower()
        if action.endswith("removing"):
            ids = self.boxes.features["obj_id"].to_numpy(int)
            idx = sorted(getattr(event, "data_indices", ()) or ())
            self._removing_boxes = [(np.asarray(self.boxes.data[i], float)[0], int(ids[i]))
                                    for i in idx]
        elif action.endswith("removed") and self._removing_boxes and self.on_removed:
            removed, self._removing_boxes = self._removing_boxes, []
            self.on_removed(removed)
        elif action.endswith("added"):  # napari says so when a drawn rectangle is finished
            self._report_last_box()

    def _report_last_box(self) -> None:
        if not len(self.boxes.data) or self.boxes.shape_type[-1] != "rectangle":
            return
        vertices = np.asarray(self.boxes.data[-1], float)
        r0, c0, r1, c1 = box_from_vertices(vertices)
        if r1 - r0 < 1 or c1 - c0 < 1:
            return  # a click, not a box
        self.on_box(vertices)

    # ----------------------------------------------------------------- queries
    def points_for(self, ref, frame: int, obj_id: int) -> tuple[np.ndarray, np.ndarray]:
        """The (row, col) points and labels (1 positive, 0 negative) of an object on a frame."""
        if self.points is None or not len(self.points.data):
            return np.empty((0, 2)), np.empty(0, np.int32)
        data = np.asarray(self.points.data, float)
        feats = self.points.features
        keep = feats["obj_id"].to_numpy(int) == int(obj_id)
        keep &= np.array([ref.contains(p) and ref.frame_of(p) == frame for p in data], bool)
        labels = feats["positive"].to_numpy(bool)[keep].astype(np.int32)
        return data[keep][:, -2:], labels

    def box_for(self, ref, frame: int, obj_id: int):
        """The last box (r0, c0, r1, c1) drawn for an object on a frame, or None."""
        if self.boxes is None or not len(self.boxes.data):
            return None
        ids = self.boxes.features["obj_id"].to_numpy(int)
        for verts, oid in zip(reversed(self.boxes.data), reversed(ids)):
            verts = np.asarray(verts, float)
            if oid == obj_id and ref.contains(verts[0]) and ref.frame_of(verts[0]) == frame:
                return box_from_vertices(verts)
        return None

    def remove_object(self, obj_id: int) -> None:
        for layer in (self.points, self.boxes):
            if layer is None or not len(layer.data):
                continue
            ids = layer.features["obj_id"].to_numpy(int)
            self._remove_quietly(layer, set(np.flatnonzero(ids == obj_id).tolist()))
        if self.points is not None and len(self.points.data):
            self._recolor()


def point_size(shape) -> float:
    """Prompt markers about 1/60 of the image's larger side wide, at least 3 pixels."""
    return float(max(3, round(max(shape[-2:]) / 60)))


def box_from_vertices(vertices) -> tuple[float, float, float, float]:
    """(r0, c0, r1, c1) of a rectangle's vertices (N, ndim) in data coordinates."""
    plane = np.asarray(vertices, float)[:, -2:]
    (r0, c0), (r1, c1) = plane.min(0), plane.max(0)
    return float(r0), float(c0), float(r1), float(c1)
