"""One ``TrackingSession`` per stack: (image layer, stack axis, position of the other axes).

The store creates sessions lazily with the image layer's contrast limits as intensity range
(what the user sees is what the model sees) and keeps them in step when the limits change.
Switching model or device drops every session (their features belong to the old model), and
so does changing the window setting (``set_window``; the masks already written stay). Multiscale
layers give their coarser levels to the session, which reads each window from the level that
matches it (``_windows.stack_levels``); on such a layer "whole frame" is a window of the whole
frame, so it too is read from the coarsest level that still gives the model its input size.
Its ``recorder`` keeps a session record per session (``_recorder.py``).
"""

from __future__ import annotations

from napari_sam2._napari._big_labels import whole_frame_refusal
from napari_sam2._napari._recorder import Recorder
from napari_sam2._napari._stack import FrameStack, StackRef, check_ndim
from napari_sam2._napari._windows import stack_levels
from napari_sam2.engine.session_record import IntensityStep, RemoveStep


def image_array(layer):
    """The full-resolution data of an image layer (level 0 of a multiscale layer)."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def image_shape(layer) -> tuple[int, ...]:
    """The non-channel shape of an image layer (RGB(A) axis removed)."""
    shape = tuple(image_array(layer).shape)
    return shape[:-1] if getattr(layer, "rgb", False) else shape


def level_shapes(layer) -> list[tuple[int, ...]]:
    """The non-channel shapes of the levels of a multiscale image layer, finest first ([] for
    a single-scale layer)."""
    if not getattr(layer, "multiscale", False):
        return []
    cut = -1 if getattr(layer, "rgb", False) else None
    return [tuple(level.shape[:cut]) for level in layer.data]


def intensity_range(layer) -> tuple[float, float] | None:
    """The layer's contrast limits as ``(lo, hi)``, None when they are degenerate."""
    lo, hi = (float(v) for v in layer.contrast_limits)
    return (lo, hi) if hi > lo else None


class SessionStore:
    """Maps (image layer, ``StackRef``) to a ``TrackingSession`` built on demand."""

    def __init__(self):
        self.model = None
        self.window = None  # the engine's window setting: None, "auto" or a side in pixels
        self._sessions: dict[tuple[int, StackRef], object] = {}
        self._layers: dict[int, object] = {}
        self.recorder = Recorder()

    def set_model(self, model) -> None:
        self.model = model
        self._sessions.clear()
        self.recorder.clear()

    def set_window(self, window) -> bool:
        """Use ``window`` for new sessions; drops the sessions when it changes (-> True)."""
        from napari_sam2.engine.windows import check_window

        window = check_window(window)
        if window == self.window:
            return False
        self.window = window
        self._sessions.clear()
        self.recorder.clear()
        return True

    def get(self, layer, ref: StackRef, *, create: bool = True):
        """The session of ``ref`` on ``layer`` (created when ``create``), or None."""
        key = (id(layer), ref)
        session = self._sessions.get(key)
        if session is None and create:
            if self.model is None:
                raise RuntimeError("no model is loaded yet: pick one and press Load")
            from napari_sam2.engine import TrackingSession

            check_ndim(image_shape(layer))
            frames = FrameStack(image_array(layer), ref, rgb=getattr(layer, "rgb", False))
            levels = stack_levels(layer, ref)
            window = self.window
            refusal = None if window else whole_frame_refusal(frames.frame_shape,
                                                               "segmenting the whole frame")
            if refusal is not None:  # its masks alone would be frame-sized (issue 19)
                raise ValueError(refusal)
            if window is None and levels:  # the whole frame, read from the matching level
                window = max(frames.frame_shape)
            session = TrackingSession(
                self.model, frames, axis=0, intensity_range=intensity_range(layer),
                window=window, levels=levels if window else ()
            )
            self._sessions[key] = session
            self._layers[id(layer)] = layer
            self.recorder.started(session, layer, ref)
        return session

    def sessions_of(self, layer) -> list[tuple[StackRef, object]]:
        return [(ref, s) for (lid, ref), s in self._sessions.items() if lid == id(layer)]

    def all(self) -> list[object]:
        return list(self._sessions.values())

    def update_intensity_range(self, layer) -> int:
        """Push the layer's contrast limits into its sessions; returns how many changed."""
        rng = intensity_range(layer)
        sessions = self.sessions_of(layer)
        for _, session in sessions:
            changed = rng != session.state.intensity_range
            session.set_intensity_range(rng)
            if changed:
                self.recorder.add(session, IntensityStep(rng))
        return len(sessions)

    def drop_layer(self, layer) -> None:
        """Forget the sessions of ``layer`` (or of a proxy of it: compared with ``==``)."""
        for lid in [lid for lid, known in self._layers.items() if known == layer]:
            for key in [k for k in self._sessions if k[0] == lid]:
                self.recorder.forget(self._sessions.pop(key))
            del self._layers[lid]

    def remove_object(self, obj_id: int, *, together: bool = False) -> None:
        """Forget ``obj_id`` in every session; ``together``: in the same action as the
        object removed just before (one undoable delete)."""
        for session in self._sessions.values():
            if obj_id in session.obj_ids:
                session.remove_object(obj_id)
                last = self.recorder.record_of(session)
                joined = together and last is not None and last.steps \
                    and isinstance(last.steps[-1], RemoveStep)
                self.recorder.add(session, RemoveStep(obj_id, together=bool(joined)))
