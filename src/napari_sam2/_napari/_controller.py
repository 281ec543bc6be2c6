"""What the widget does, without the widget: prompts -> jobs -> masks pasted into Labels.

``Sam2Controller`` owns the state of one docked widget: the chosen image and labels layers, the
stack axis, the model, the prompt layers, the objects, and its parts, built once and each given
its collaborators explicitly:

* ``sessions`` (``SessionStore``): one ``TrackingSession`` per stack;
* ``jobs`` (``JobQueue``) and ``prefetcher`` (``Prefetcher``): how work runs, through the
  injected worker factory (napari thread workers by default; ``run_now`` runs them
  synchronously, e.g. in tests without a viewer);
* ``writer`` (``LabelsWriter``): pastes masks under the no-overwrite rules, keeps undo;
* ``feedback`` (``Feedback``): the callbacks the parts report through (wired to the signals);
* ``clicks`` (``Segmenter``) and ``tracker`` (``Tracker``): the click and propagation jobs,
  which need no viewer.

The controller itself translates the viewer (layers, dims, prompt layers) into their
arguments. Every layer change happens on the main thread, in the workers' ``returned``/
``yielded`` handlers. Messages for the user go
through the ``status`` signal (and napari notifications for errors): one line per error, the
package's own message for expected errors (``_messages.error_message``), and nothing changed.
Removing the image or Labels layer a job works on stops that job with one message; labels
already written stay.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from psygnal import Signal

from napari_sam2._napari._big_labels import labels_array, new_labels, whole_frame_refusal
from napari_sam2._napari._clicks import Segmenter
from napari_sam2._napari._everything import Everything
from napari_sam2._napari._division import Divider, DivisionMark
from napari_sam2._napari._layers import (
    LabelsWriter,
    SamPainter,
    UndoGroup,
    labels_on_plane,
    next_free_label,
)
from napari_sam2._napari._messages import Feedback
from napari_sam2._napari._prefetch import Prefetcher
from napari_sam2._napari._prompts import PromptLayers
from napari_sam2._napari._recorder import RECORDS_KEY
from napari_sam2._napari._restore import rebuild, restorable, restore
from napari_sam2._napari._sessions import SessionStore, image_shape, level_shapes
from napari_sam2._napari._stack import StackRef, check_ndim, non_spatial_axes, stack_ref
from napari_sam2._napari._tracking import Tracker
from napari_sam2._napari._tracks import (
    LINEAGE_KEY,
    TracksView,
    lineage_record,
    painted_frames,
    saved_parents,
)
from napari_sam2._napari._workers import JobQueue, WorkerFactory, napari_worker

DEFAULT_MODEL = "sam2.1_hiera_tiny"
#: Frames in a row without an object after which its tracking stops, by default along z.
STOP_AFTER_ABSENT = 3


@dataclass
class ImageState:
    """What the widget shows for one image, kept while another image is picked."""

    image: object
    labels_layer: object | None
    stack_axis: int | None
    objects: set[int]
    current_obj: int
    prompts: dict | None
    frame: int | None  # the frame shown when another image was picked


def visible_color(rgba) -> bool:
    """Whether a label colour stands out on microscopy: not greyish, not near white or black."""
    r, g, b = (float(c) for c in tuple(rgba)[:3])
    brightness = 0.299 * r + 0.587 * g + 0.114 * b
    return max(r, g, b) - min(r, g, b) >= 0.2 and brightness <= 0.9 and max(r, g, b) >= 0.3


def napari_progress_bar(total: int, desc: str):
    """A bar in napari's activity panel."""
    from napari.utils import progress

    return progress(total=total, desc=desc)


class Sam2Controller:
    status = Signal(str)
    objects_changed = Signal()
    busy_changed = Signal(bool)
    progress = Signal(int, int, float)  # frames done, total, frames/s
    everything_progress = Signal(int, int, float)  # grid points done, total, points/s
    model_changed = Signal(str)

    def __init__(self, viewer, start_worker: WorkerFactory = napari_worker,
                 activity_bar: bool = False):
        """``activity_bar``: also show propagation in napari's activity panel. Off by default:
        its spinner animates for the whole run and, with software rendering, cost about 0.4 of
        a CPU core (1.1 s of CPU in 3 s, measured under Xvfb), taken from the model; the
        widget's own bar and frames/s line show the same progress."""
        self.viewer = viewer
        self.image_layer = None
        self.labels_layer = None
        self.stack_axis: int | None = None
        self.current_obj = 1
        self.objects: set[int] = set()
        self.follow = True
        self.model_name: str | None = None
        self.feedback = Feedback(
            say=self.say, error=self._error, busy=self.busy_changed.emit,
            progress=self._on_progress, written=self._after_write,
            objects_changed=self.objects_changed.emit, exists=lambda layer: layer in viewer.layers,
        )
        self.sessions = SessionStore()
        self.jobs = JobQueue(start_worker)
        self.jobs.on_idle = self._on_idle
        self.prefetcher = Prefetcher(start_worker=start_worker)
        self.prefetcher.on_error = self.feedback.failed("preparing the shown frame")
        self.writer = LabelsWriter()
        self.clicks = Segmenter(self.jobs, self.sessions, self.writer, self.feedback)
        self.tracker = Tracker(
            self.jobs, self.sessions, self.writer, self.feedback, prefetcher=self.prefetcher,
            progress_bar=napari_progress_bar if activity_bar else None,
        )
        self.everything = Everything(self.jobs, self.sessions, self.writer, self.feedback,
                                     progress=self.everything_progress.emit)
        self.prompts = PromptLayers(viewer, self._on_point, self._on_box, self._on_points_removed)
        self.divider = Divider(self.jobs, self.sessions, self.writer, self.feedback)
        self.division: DivisionMark | None = None  # a division being marked (docs/plugin.md)
        self.tracks = TracksView(viewer, self.lineage_parents)
        self.writer.listeners.append(self.tracks.mark)
        self._painted: list = []  # Labels layers whose paint events we follow
        # {labels layer's unique_id: {track: parent}} read from the record the labels came
        # with (a file); our own writes to the record do not change it (see lineage_parents)
        self._saved_parents: dict = {}
        self._contrast_dirty = False
        self.last_download: tuple[int, int] | None = None
        self._kept: list[ImageState] = []  # the state of images picked before (see switch)
        self.pending_restore = None  # (image, labels, records) to replay once a model is set
        self.restoring = False  # a reopened session is being replayed (see _restore.py)
        self.restored = None  # (image, labels) of the last restore: not restored twice
        viewer.layers.events.removed.connect(self._on_layer_removed)
        viewer.layers.events.inserted.connect(self._on_layer_inserted)

    def close(self) -> None:
        """Stop background work and detach from the viewer (the widget is closing)."""
        self.cancel()
        self.jobs.quit()
        self.prefetcher.stop()
        self.viewer.layers.events.removed.disconnect(self._on_layer_removed)
        self.viewer.layers.events.inserted.disconnect(self._on_layer_inserted)
        for layer in self._painted:
            layer.events.paint.disconnect(self._on_paint)

    # ------------------------------------------------------------------ messages
    def say(self, text: str) -> None:
        self.status.emit(text)

    def _error(self, text: str) -> None:
        from napari.utils.notifications import show_error

        self.say(text)
        show_error(f"SAM 2: {text}")

    @property
    def overwrite(self) -> bool:
        """Whether SAM may overwrite other labels' pixels."""
        return self.writer.overwrite

    @overwrite.setter
    def overwrite(self, on: bool) -> None:
        from napari_sam2.engine.session_record import OverwriteStep

        if bool(on) != self.writer.overwrite:
            self.sessions.recorder.add_to_all(OverwriteStep(bool(on)))
        self.writer.overwrite = bool(on)
        self.record_provenance()

    @property
    def propagating(self) -> bool:
        return self.tracker.propagating

    def cancel(self) -> None:
        """Stop the running propagation after the frame being computed (kept), or segment
        everything after its current batch (nothing written)."""
        self.tracker.cancel()
        self.everything.cancel()

    # ------------------------------------------------------------------ layers
    def _on_layer_removed(self, event) -> None:
        """The user removed a layer: stop the job that writes into it or reads from it."""
        # ``==``, not ``is``: the plugin's viewer hands out proxies of the layers, the event the
        # layer itself (a proxy compares equal to the layer it wraps)
        layer = event.value
        in_use = self.tracker.layer_removed(layer)
        in_use |= layer == self.image_layer or layer == self.labels_layer
        if in_use:
            self.jobs.clear_pending()  # queued clicks on that layer have nowhere to go
        self.sessions.drop_layer(layer)  # its features (the widget may have let go of it first)
        self._kept = [k for k in self._kept if not k.image == layer]
        for kept in self._kept:
            if kept.labels_layer == layer:
                kept.labels_layer = None
        if layer == self.image_layer:
            self.prefetcher.stop()
            self.image_layer = None
        if layer == self.labels_layer:
            self.labels_layer = None
        if self.tracks.labels is not None and layer == self.tracks.labels:
            self.tracks.attach(None, None)  # its Tracks layer stays as it is

    def _on_layer_inserted(self, event) -> None:
        """Saved labels of the picked image opened (with their session record): use them."""
        if self.labels_layer is None and restorable(event.value, self.image_layer):
            self.set_labels_layer(event.value)

    def set_image_layer(self, layer) -> bool:
        """Work on ``layer``. Each image keeps its own prompts, objects, Labels layer, stack
        axis, shown frame and sessions: picking another image puts the current ones aside (the
        prompt layers are emptied) and brings back those of the picked image, if it was used
        before.
        """
        if layer is None:
            self.image_layer = None
            self.say("Open an image (2D, 2D+t, 3D or 3D+t), then pick it here.")
            return False
        try:
            ndim = check_ndim(image_shape(layer))
        except ValueError as exc:
            self._error(str(exc))
            return False
        if self.image_layer is not None and layer == self.image_layer:
            self.prompts.attach(layer, ndim)  # same image: keep everything
            return True
        self._put_aside()
        kept = next((k for k in self._kept if k.image == layer), None)
        self.image_layer = layer
        self.prompts.attach(layer, ndim)
        if kept is not None:
            self._kept.remove(kept)
            labels = kept.labels_layer
            self.labels_layer = labels if labels is not None and labels in self.viewer.layers \
                else None
            self.stack_axis, self.objects = kept.stack_axis, kept.objects
            self.prompts.restore(kept.prompts)
            self.select_object(kept.current_obj)
            if kept.frame is not None:
                self.go_to_frame(kept.frame)  # back where the user was
        else:
            self.stack_axis = self.default_stack_axis(layer) if ndim > 2 else None
            self.labels_layer = None
            self.objects = set()
            self.select_object(1)
        layer.events.contrast_limits.connect(self._on_contrast)
        self._attach_tracks()
        self.objects_changed.emit()
        if self.labels_layer is None:  # its labels saved with a session record are open: use them
            in_use = [k.labels_layer for k in self._kept]
            saved = [la for la in self.viewer.layers
                     if restorable(la, layer) and not any(la == u for u in in_use)]
            if saved:
                self.set_labels_layer(saved[-1])
        return True

    def _put_aside(self) -> None:
        """Keep the current image's state and empty the prompt layers (another image comes)."""
        if self.image_layer is None:
            return
        if self.image_layer in self.viewer.layers:
            frame = None
            if self.stack_axis is not None:
                try:
                    frame = self.current_frame()
                except (ValueError, IndexError):
                    frame = None
            self._kept.append(ImageState(
                self.image_layer, self.labels_layer, self.stack_axis, set(self.objects),
                self.current_obj, self.prompts.snapshot(), frame,
            ))
        self.prompts.clear()
        self.prefetcher.stop()

    @staticmethod
    def default_stack_axis(layer) -> int:
        """'t' if the layer has such an axis label, else 'z', else the first axis."""
        ndim = len(image_shape(layer))
        names = [str(a).lower() for a in getattr(layer, "axis_labels", ())][-ndim:]
        for wanted in ("t", "time", "z"):
            if wanted in names[: ndim - 2]:
                return names.index(wanted)
        return 0

    def axis_names(self) -> list[str]:
        """The names of the image's stack axes, as napari's sliders show them."""
        if self.image_layer is None:
            return []
        ndim = len(image_shape(self.image_layer))
        labels = list(self.viewer.dims.axis_labels)[-ndim:]
        if len(labels) != ndim:
            labels = [str(a) for a in range(ndim)]
        return [str(n) for n in labels[: ndim - 2]]

    def default_stop_after_absent(self) -> int | None:
        """``STOP_AFTER_ABSENT`` when the stack axis is named z (objects end in a volume),
        else None (in a time-lapse objects leave and come back). The name is the image layer's
        own axis label, else the viewer's (which follows the last layer added)."""
        if self.stack_axis is None or self.image_layer is None:
            return None
        ndim = len(image_shape(self.image_layer))
        own = [str(a) for a in getattr(self.image_layer, "axis_labels", ())][-ndim:]
        names = own if len(own) == ndim else self.axis_names()
        if names[self.stack_axis].strip().lower() == "z":
            return STOP_AFTER_ABSENT
        return None

    def set_stack_axis(self, axis: int) -> None:
        if self.image_layer is None:
            return
        if axis not in non_spatial_axes(len(image_shape(self.image_layer))):
            raise ValueError(f"axis {axis} is not a stack axis of this image")
        self.stack_axis = int(axis)
        self._attach_tracks()
        self.objects_changed.emit()

    def set_labels_layer(self, layer) -> bool:
        """Use ``layer`` for the masks (None: create one matching the image)."""
        if self.image_layer is None:
            self._error("pick an image layer first")
            return False
        shape = image_shape(self.image_layer)
        if layer is None:
            name = f"{self.image_layer.name} SAM labels"
            data = new_labels(shape, level_shapes(self.image_layer))  # chunked when huge
            layer = self.viewer.add_labels(
                data, name=name, multiscale=isinstance(data, list),
                scale=tuple(self.image_layer.scale)[-len(shape):],
                translate=tuple(self.image_layer.translate)[-len(shape):],
            )
            self.prompts.raise_to_top()
            self.prompts.activate_points()
        elif tuple(layer.data.shape) != shape:
            self._error(
                f"labels layer '{layer.name}' has shape {tuple(layer.data.shape)} but the image's "
                f"non-channel shape is {shape}: pick another layer or create a new one"
            )
            return False
        self.labels_layer = layer
        self.writer.painter(layer)
        self._lineage_read_with(layer)  # before we write our own record into it
        self._attach_tracks()
        self.objects_changed.emit()
        restore(self, layer)  # labels saved with a session record: objects, prompts, session
        return True

    def _ensure_labels(self) -> bool:
        if self.labels_layer is None or self.labels_layer not in self.viewer.layers:
            return self.set_labels_layer(None)
        return True

    @property
    def painter(self) -> SamPainter:
        return self.writer.painter(self.labels_layer)

    # ------------------------------------------------------------------ model
    def set_window(self, window) -> None:
        """Segment in windows (None: whole frames, "auto", or a side in pixels; issue 19).
        A change starts new sessions: masks already written stay, prompts are not replayed."""
        if self.sessions.set_window(window):
            self.prefetcher.forget()
            self.say("window: " + ("whole frame" if window is None else f"{window}") +
                     " (new prompts and propagations use it)")

    def set_model(self, model, name: str = "custom") -> None:
        """Use an already built ``Sam2Model`` (drops all sessions and cached features)."""
        self.prefetcher.stop()
        self.prefetcher.forget()
        self.sessions.set_model(model)
        self.model_name = name
        self.sessions.recorder.model_name = name
        self.sessions.recorder.checkpoint_sha256 = getattr(model, "checkpoint_sha256", None)
        self.model_changed.emit(name)
        self.say(f"model {name} ready on {next(model.parameters()).device}")
        if not rebuild(self):  # a session reopened with its labels before a model was loaded
            self.prefetch_current()

    def load_model(self, name: str, checkpoint: str | None = None, device: str = "auto") -> None:
        """Load (and download when needed) a model in a worker with activity-panel progress."""
        from napari.utils import progress

        from napari_sam2._napari._workers import load_model_steps

        bar = {"bar": None}

        def on_progress(step):
            done, total = step
            self.last_download = (done, total)
            if bar["bar"] is None:
                bar["bar"] = progress(total=total or None, desc=f"Downloading {name}")
            bar["bar"].update(done - bar["bar"].n)

        def close_bar():
            if bar["bar"] is not None:
                bar["bar"].close()

        def job():
            from napari_sam2._napari._recorder import checkpoint_sha256

            model = yield from load_model_steps(name, checkpoint or None, device)
            model.checkpoint_sha256 = checkpoint_sha256(name, checkpoint or None)
            return model

        self.say(f"loading {name} ...")
        self.busy_changed.emit(True)
        self.jobs.submit(
            job, yielded=on_progress, returned=lambda m: self.set_model(m, name),
            errored=self.feedback.failed(
                f"loading {name}" + (f" from {checkpoint}" if checkpoint else "")
            ),
            finished=close_bar,
        )

    # ------------------------------------------------------------------ positions
    def position(self) -> np.ndarray:
        """The viewer's current position in the image's data coordinates."""
        return np.asarray(self.image_layer.world_to_data(self.viewer.dims.point), float)

    def current_ref(self) -> StackRef:
        return stack_ref(image_shape(self.image_layer), self.stack_axis, self.position())

    def current_frame(self) -> int:
        return self.current_ref().frame_of(self.position())

    def num_frames(self) -> int:
        if self.image_layer is None:
            return 0
        shape = image_shape(self.image_layer)
        return 1 if self.stack_axis is None else shape[self.stack_axis]

    def _inside(self, coords) -> bool:
        shape = image_shape(self.image_layer)
        c = np.asarray(coords, float)
        return bool(np.all(c >= -0.5) and np.all(c <= np.asarray(shape) - 0.5))

    def go_to_frame(self, frame: int) -> None:
        if self.stack_axis is None or self.image_layer is None:
            return
        world_axis = self.viewer.dims.ndim - len(image_shape(self.image_layer)) + self.stack_axis
        layer = self.image_layer
        axis = self.stack_axis - layer.ndim  # counted from the end (RGB layers have ndim - 1)
        value = layer.translate[axis] + layer.scale[axis] * frame
        self.viewer.dims.set_point(world_axis, value)

    # ------------------------------------------------------------------ prefetch
    def prefetch_current(self) -> None:
        if (self.image_layer is None or self.sessions.model is None or self.propagating
                or self.restoring):
            return
        try:
            ref = self.current_ref()
            session = self.sessions.get(self.image_layer, ref)
        except (RuntimeError, ValueError):
            return
        self.prefetcher.request(session, ref.frame_of(self.position()))

    def _on_contrast(self, event=None) -> None:
        """Contrast limits are the model's intensity range (applied between jobs)."""
        self._contrast_dirty = True
        if not self.jobs.busy:
            self._apply_contrast()

    def _apply_contrast(self) -> None:
        self._contrast_dirty = False
        if self.image_layer is not None:
            self.sessions.update_intensity_range(self.image_layer)
            self.prefetcher.forget()

    def _on_idle(self) -> None:
        if self._contrast_dirty:
            self._apply_contrast()
        self.busy_changed.emit(False)

    # ------------------------------------------------------------------ prompts
    def _check_ready(self, create_labels: bool = True) -> bool:
        """An image and a model (and, when ``create_labels``, a Labels layer, made if needed)."""
        if self.image_layer is None:
            self._error("no image layer: open an image and pick it in the SAM 2 widget")
            return False
        if self.sessions.model is None and not self.jobs.busy:
            self._error("no model loaded: pick a model and press Load")
            return False
        return self._ensure_labels() if create_labels else True

    def _plane_shown(self) -> bool:
        """True when the viewer shows the image's (y, x) plane in 2-D, as SAM needs."""
        world_ndim = self.viewer.dims.ndim
        ok = self.viewer.dims.ndisplay == 2 and tuple(self.viewer.dims.displayed) == (
            world_ndim - 2, world_ndim - 1)
        if not ok:
            self._error("SAM segments the (y, x) plane: switch to 2-D display and the default "
                        "axis order (the dims buttons at the bottom left), then click")
        return ok

    def _on_point(self, coords, positive: bool) -> None:
        if not self._plane_shown():
            self.prompts.remove_last_point()
            return
        ready = self._check_ready(create_labels=False)
        if ready and not self._inside(coords):
            self._error(f"the click at {np.round(coords, 1).tolist()} is outside the image")
        if not ready or not self._inside(coords) or not self._ensure_labels():
            self.prompts.remove_last_point()  # a refused click leaves nothing behind
            return
        ref = stack_ref(image_shape(self.image_layer), self.stack_axis, coords)
        if self.division is not None:
            self._division_click(ref, coords)
            return
        self.segment(ref, ref.frame_of(coords), self.current_obj)

    def _on_box(self, vertices) -> None:
        if not self._check_ready():
            return
        ref = stack_ref(image_shape(self.image_layer), self.stack_axis, vertices[0])
        self.segment(ref, ref.frame_of(vertices[0]), self.current_obj)

    def _on_points_removed(self, removed) -> None:
        """Prompt points or boxes deleted by the user: re-segment each affected (frame,
        object) from the prompts left there."""
        if self.image_layer is None or self.sessions.model is None or self.labels_layer is None:
            return
        shape = image_shape(self.image_layer)
        todo = {}
        for coords, obj in removed:
            ref = stack_ref(shape, self.stack_axis, coords)
            todo[(ref, ref.frame_of(coords), obj)] = True
        for ref, frame, obj in todo:
            self.segment(ref, frame, obj)

    def segment(self, ref: StackRef, frame: int, obj_id: int) -> None:
        """Re-run SAM on one frame for one object from all its prompts there."""
        points, labels = self.prompts.points_for(ref, frame, obj_id)
        box = self.prompts.box_for(ref, frame, obj_id)
        self.objects.add(int(obj_id))
        self.clicks.segment(
            self.image_layer, self.labels_layer, ref, frame, obj_id, points, labels, box
        )

    def record_provenance(self) -> None:
        """Note in the Labels layer's metadata what made it (saved by our writers)."""
        from napari_sam2 import __version__

        if self.labels_layer is None or self.image_layer is None:
            return
        axis_names = self.axis_names()
        old = self.labels_layer.metadata.get("napari_sam2") or {}
        self.labels_layer.metadata["napari_sam2"] = provenance = {
            "software": f"napari-sam2 {__version__}",
            "model": self.model_name,
            "image": getattr(self.image_layer, "name", None),
            "stack_axis": None if self.stack_axis is None else axis_names[self.stack_axis],
            "intensity_range": [float(v) for v in self.image_layer.contrast_limits],
            "objects": sorted(int(o) for o in self.objects),
        }
        sessions = [s for _, s in self.sessions.sessions_of(self.image_layer)]
        document = self.sessions.recorder.document(sessions)
        if document["records"]:  # else keep a record reopened with the labels, not yet replayed
            provenance[RECORDS_KEY] = document
        elif RECORDS_KEY in old:
            provenance[RECORDS_KEY] = old[RECORDS_KEY]
        lineage = self.lineage()
        if lineage is not None:
            self.labels_layer.metadata["napari_sam2"][LINEAGE_KEY] = lineage

    # ------------------------------------------------------------------ tracking
    def mask_as_prompt(self, obj_ids=None) -> None:
        """Use the Labels pixels on the shown frame as the prompt of objects there.

        ``obj_ids`` None: the current object; ``"all"``: every label on the frame (e.g. from
        Cellpose). The painted masks stay as they are; later propagation starts from them.
        """
        if not self._check_ready(create_labels=False) or self._huge("using painted masks"):
            return
        if self.labels_layer is None or self.labels_layer not in self.viewer.layers:
            self._error("no Labels layer to take masks from: pick the Labels layer with the "
                        "painted objects (or paint into a new one) first")
            return
        ref, frame = self.current_ref(), self.current_frame()
        plane = np.array(labels_array(self.labels_layer)[ref.plane_key(frame)])
        if obj_ids == "all":
            ids = labels_on_plane(plane)
        else:
            ids = [self.current_obj] if obj_ids is None else list(obj_ids)
        ids = [i for i in ids if (plane == i).any()]
        if not ids and obj_ids == "all":
            self._error(f"no labels on frame {frame}: paint objects (or add a segmentation "
                        "as a Labels layer and pick it) first")
            return
        if not ids:
            self._error(
                f"no labelled pixels of {obj_ids or self.current_obj} on frame {frame}: "
                "paint the object first"
            )
            return
        self.objects |= set(ids)
        self.tracker.mask_as_prompt(self.image_layer, ref, frame, {i: plane == i for i in ids})

    def propagate(self, direction: str = "forward", frame_range=None, obj_ids=None,
                  stop_after_absent: int | None = None, divisions: bool = False) -> bool:
        """Propagate from the shown frame; ``direction`` forward/backward/both;
        ``stop_after_absent`` N: each object stops after N frames in a row without it (None:
        never; the widget's default is ``default_stop_after_absent()``).

        A refused propagation (nothing to propagate, bad range) changes nothing; after "both"
        the view goes back to the frame it started from. ``divisions``: find cell divisions
        going forward (``engine.division.DivisionRule``'s defaults; the widget's default is
        ``default_detect_divisions()``)."""
        if not self._check_ready(create_labels=False) or \
                (divisions and self._huge("finding divisions")):
            return False
        self.cancel_division()
        ref, start = self.current_ref(), self.current_frame()
        rule = None
        if divisions:
            from napari_sam2.engine.division import DivisionRule

            # daughters' ids above every label in the layer (painted ones too), not only the
            # session's objects; recorded with the run, so a replay picks the same ids
            used = labels_array(self.labels_layer) if self.labels_layer is not None else ()
            rule = DivisionRule(first_id=next_free_label(used, self.objects))
        planned = self.tracker.plan(
            self.image_layer, ref, start=start, n_frames=self.num_frames(), direction=direction,
            frame_range=frame_range, obj_ids=obj_ids, stop_after_absent=stop_after_absent,
            divisions=rule,
        )
        if planned is None or not self._ensure_labels():
            return False
        session, plan = planned
        image = self.image_layer

        def follow(frame: int) -> None:  # only while that image is the one picked
            if self.follow and self.image_layer is not None and self.image_layer == image:
                self.go_to_frame(frame)

        back = (lambda: follow(start)) if direction == "both" else None
        self.tracker.start(session, image, self.labels_layer, ref, plan, follow=follow,
                           on_end=back)
        return True

    def segment_everything(self, options=None, *, replace: bool = False, track: bool = False,
                           **propagate) -> bool:
        """Segment everything on the shown frame into the Labels layer (only empty pixels,
        new ids above the existing ones, unless ``replace``); ``track``: then propagate the
        new objects (``propagate``: ``direction``, ``frame_range``, ``stop_after_absent``).
        Returns whether a job was queued."""
        if not self._check_ready() or not self._plane_shown() \
                or self._huge("segmenting everything"):
            return False
        ref, frame = self.current_ref(), self.current_frame()

        def found(ids) -> None:
            self.objects |= set(ids)
            if track and ids:  # only the new objects: others keep their own runs
                self.propagate(obj_ids=ids, **propagate)
        self.everything.segment(self.image_layer, self.labels_layer, ref, frame,
                                known=self.objects, options=options, replace=replace,
                                track=track, on_done=found)
        return True

    # ------------------------------------------------------------------ objects
    def new_object(self) -> int:
        if self._ensure_labels():
            obj = next_free_label(labels_array(self.labels_layer), self.objects)
            for _ in range(64):  # skip ids whose colour would be hard to see on the image
                if visible_color(self.labels_layer.get_color(obj)):
                    break
                obj += 1
            self.select_object(obj)
            self.objects.add(obj)
            self.prompts.activate_points()
            self.objects_changed.emit()
        return self.current_obj

    def select_object(self, obj_id: int) -> None:
        self.current_obj = int(obj_id)
        self.prompts.set_object(obj_id)
        if self.labels_layer is not None:
            self.labels_layer.selected_label = int(obj_id)
        self.objects_changed.emit()

    def delete_objects(self, obj_ids) -> None:
        """Forget objects everywhere and erase their pixels (one undoable step)."""
        if self.jobs.busy:
            self._error("wait for the running job (or cancel it) before deleting objects")
            return
        group = UndoGroup(f"delete objects {list(obj_ids)}", target=self.labels_layer)
        for known in self._saved_parents.values():  # deleted objects have no lineage left
            for obj in obj_ids:
                known.pop(obj, None)
        for i, obj in enumerate(obj_ids):
            self.sessions.remove_object(obj, together=i > 0)
            self.prompts.remove_object(obj)
            self.objects.discard(obj)
            if self.labels_layer is not None:
                self.writer.erase(group, obj)
        self.writer.undo_stack.push(group)
        if self.labels_layer is not None:
            self.labels_layer.refresh()
        if self.current_obj in obj_ids:  # clicks go to an object that still exists
            left = sorted(self.objects)
            data = labels_array(self.labels_layer) if self.labels_layer is not None else ()
            self.select_object(left[-1] if left else next_free_label(data, obj_ids))
        self.tracks.graph_changed()
        self.tracks.flush(force=True)
        self.record_provenance()  # the objects and lineage saved with the labels follow
        self.objects_changed.emit()

    def frames_covered(self, obj_id: int) -> list[int]:
        """Frames of the current stack where SAM wrote ``obj_id`` or it has a prompt."""
        if self.labels_layer is None or self.image_layer is None:
            return []
        ref = self.current_ref()
        frames = set()
        for pid in self.painter.planes_with(obj_id):
            if all(pid[a] == i for a, i in ref.fixed):
                frames.add(0 if ref.stack_axis is None else pid[ref.stack_axis])
        session = self.sessions.get(self.image_layer, ref, create=False)
        if session is not None and obj_id in session.obj_ids:
            frames.update(session.prompt_frames(obj_id))  # e.g. a painted mask used as prompt
        return sorted(frames)

    # ------------------------------------------------------------------ undo
    def undo(self) -> int:
        """Revert the last SAM write (click, propagation, delete); returns pixels restored."""
        if self.jobs.busy:
            self._error("wait for the running job (or cancel it) before undoing")
            return 0
        session = self._session()
        before = set(session.obj_ids) if session is not None else set()
        group, restored = self.writer.undo(exists=self.feedback.exists)
        if group is None:
            self.say("nothing to undo")
            return 0
        if group.target == self.labels_layer and self.image_layer is not None:
            self.sessions.recorder.undone(self.sessions.sessions_of(self.image_layer),
                                          [edit.key for edit in group.edits])
            self.record_provenance()
        self.say(f"undone: {group.description} ({restored} pixels)")
        gone = before - set(session.obj_ids) if session is not None else set()
        if gone:  # an undone division: its daughters are objects no more
            self.objects -= gone
            if self.current_obj in gone:
                self.select_object(max(self.objects, default=1))
        self.tracks.graph_changed()
        self.tracks.flush(force=True)
        self.record_provenance()  # the lineage saved with the labels follows the undo
        self.objects_changed.emit()
        return restored

    # ------------------------------------------------------------------ divisions and tracks
    def default_detect_divisions(self) -> bool:
        """Find divisions automatically by default, except along z (objects do not divide
        in a volume; the stack axis's name is read as ``default_stop_after_absent`` does) and
        on frames too large for whole-frame masks (``_big_labels.whole_frame_refusal``)."""
        return self.stack_axis is not None and self.default_stop_after_absent() is None \
            and self.image_layer is not None \
            and whole_frame_refusal(image_shape(self.image_layer), "") is None

    def mark_division(self) -> bool:
        """Start marking a division of the current object on the shown frame: the next two
        clicks there are the daughters (new objects). Refused (one line) without a stack, a
        model, or while a job runs."""
        self.cancel_division()
        if not self._check_ready() or self._huge("dividing a cell"):
            return False
        if self.stack_axis is None:
            self._error("divisions need a stack (2D+t or 3D+t): this image has one frame")
            return False
        if self.jobs.busy:
            self._error("wait for the running job (or cancel it) before marking a division")
            return False
        parent, ref, frame = self.current_obj, self.current_ref(), self.current_frame()
        first = self._free_object(next_free_label(labels_array(self.labels_layer), self.objects))
        second = self._free_object(first + 1)
        self.division = DivisionMark(parent, frame, ref, (first, second))
        self.prompts.set_object(first)
        self.prompts.activate_points()
        self.say(self.division.prompt())
        self.objects_changed.emit()
        return True

    def cancel_division(self) -> None:
        """Stop marking a division; its clicks so far are removed (nothing was computed)."""
        mark, self.division = self.division, None
        if mark is None:
            return
        self._remove_division_points(mark)
        self.prompts.set_object(self.current_obj)
        self.say(f"division of object {mark.parent} cancelled")
        self.objects_changed.emit()

    def _remove_division_points(self, mark: DivisionMark) -> None:
        for oid in mark.daughters:
            self.prompts.remove_object(oid)

    def _division_click(self, ref, coords) -> None:
        mark = self.division
        frame = ref.frame_of(coords)
        if ref != mark.ref or frame != mark.frame:
            self.prompts.remove_last_point()
            self._error(f"the daughters of object {mark.parent} are clicked on frame "
                        f"{mark.frame}, where the division was started: go back to it, or "
                        "cancel the division (Esc)")
            return
        mark.clicks.append(tuple(float(v) for v in np.asarray(coords)[-2:]))
        if not mark.complete:
            self.prompts.set_object(mark.expected)
            self.say(mark.prompt())
            return
        self.division = None
        self.prompts.set_object(self.current_obj)
        self.objects.update(mark.daughters)

        def done(ok: bool) -> None:
            if ok:
                self.select_object(mark.daughters[0])
            else:  # refused: the daughters are not objects, their clicks go
                self.objects.difference_update(mark.daughters)
                self._remove_division_points(mark)
            self.objects_changed.emit()

        self.say(f"dividing object {mark.parent} on frame {mark.frame} ...")
        self.divider.divide(self.image_layer, self.labels_layer, mark, done)

    def _free_object(self, obj: int) -> int:
        """``obj`` or the next id whose colour is easy to see (as ``new_object`` picks)."""
        for _ in range(64):
            if visible_color(self.labels_layer.get_color(obj)):
                break
            obj += 1
        return obj

    def _huge(self, what: str) -> bool:
        """Refuse (one line, True) ``what`` when it needs whole frames of a huge image."""
        why = None if self.image_layer is None else \
            whole_frame_refusal(image_shape(self.image_layer), what)
        if why is not None:
            self._error(why)
        return why is not None

    def _session(self, create: bool = False):
        if self.image_layer is None or self.stack_axis is None:
            return None
        try:
            return self.sessions.get(self.image_layer, self.current_ref(), create=create)
        except (RuntimeError, ValueError):
            return None

    def lineage_parents(self) -> dict[int, int]:
        """{object: parent} of the current stack: the lineage the labels came with (read
        once, when the layer is first used: a division undone here must not come back from
        the record we wrote), updated by the tracking session's."""
        if self.labels_layer is None:
            return {}
        parents = dict(self._lineage_read_with(self.labels_layer))
        session = self._session()
        if session is not None:
            parents.update(session.lineage.parents())
        return parents

    def _lineage_read_with(self, labels) -> dict[int, int]:
        """{track: parent} of the record ``labels`` came with, read the first time."""
        key = getattr(labels, "unique_id", id(labels))
        if key not in self._saved_parents:
            try:
                found = saved_parents(labels.metadata.get("napari_sam2"))
            except ValueError:  # a damaged record: the session's lineage still counts
                found = {}
            self._saved_parents[key] = found
        return self._saved_parents[key]

    def lineage(self) -> dict | None:
        """The lineage of the labels of the current stack as saved (``Lineage.to_dict()``),
        None when the stack is not a time-lapse the Tracks layer can show."""
        if not self.tracks.active:
            return None
        self.tracks.flush(force=True)
        return lineage_record(self.tracks.extents(), self.lineage_parents())

    def _attach_tracks(self) -> None:
        """Show the Tracks layer of the current stack of the Labels layer."""
        labels = self.labels_layer
        if labels is None or self.image_layer is None or self.stack_axis is None:
            self.tracks.attach(None, None)
            return
        try:
            ref = self.current_ref()
        except (ValueError, IndexError):
            return
        if not any(known is labels for known in self._painted):
            labels.events.paint.connect(self._on_paint)
            self._painted.append(labels)
        self.tracks.attach(labels, ref)

    def _on_paint(self, event=None) -> None:
        """Labels painted (or filled, erased) by hand: the centroids of the frames touched."""
        layer = self.labels_layer
        if layer is None or layer is not self.tracks.labels:
            return
        frames = painted_frames(getattr(event, "value", None) or (), self.tracks.ref.stack_axis)
        if frames is None:
            self.tracks.mark_all()
        for frame in frames or ():
            self.tracks.mark(layer, self.tracks.ref.plane_key(frame))
        # napari says so before the pixels are in the array: recompute once they are
        from qtpy.QtCore import QTimer

        QTimer.singleShot(0, lambda: self.tracks.flush(force=True))

    def _on_progress(self, done: int, total: int, fps: float) -> None:
        self.progress.emit(done, total, fps)
        self.tracks.flush()  # at most every tracks.interval seconds

    def _sync_objects(self) -> None:
        """Objects the session made (daughters of a division found while propagating)."""
        session = self._session()
        if session is not None:
            self.objects.update(int(o) for o in session.obj_ids)

    def _after_write(self) -> None:
        """SAM wrote into the Labels layer (a click, a run, a division): objects, tracks and
        the record saved with the labels follow."""
        self._sync_objects()
        self._attach_tracks()
        self.tracks.graph_changed()
        self.tracks.flush(force=True)
        self.record_provenance()

    def stack_labels(self) -> np.ndarray | None:
        """The (T, H, W) labels of the current stack (a copy), None without a time-lapse."""
        if not self.tracks.active:
            return None
        key = list(self.current_ref().plane_key(0))
        key[self.stack_axis] = slice(None)
        return np.asarray(labels_array(self.labels_layer)[tuple(key)])

    def export_tracks(self, path, kind: str | None = None) -> str | None:
        """Export the current stack's tracks and lineage (``_export.export_tracks``: a CTC
        folder, GEFF or CSV); returns the path written, or None after saying why not."""
        from napari_sam2._napari._export import export_tracks
        from napari_sam2._napari._messages import error_message

        if self.jobs.busy:
            self._error("wait for the running job (or cancel it) before exporting tracks")
            return None
        if self._huge("exporting tracks"):
            return None
        labels = self.stack_labels()
        if labels is None:
            self._error("nothing to export: tracks need a Labels layer of a time-lapse tracked "
                        "along its first axis (t)")
            return None
        try:
            written, kind = export_tracks(path, labels, self.lineage_parents(), kind)
        except Exception as exc:  # noqa: BLE001 - one line for the user, as every error
            self._error(error_message(exc, f"exporting tracks to {path}"))
            return None
        self.say(f"tracks exported to {written} ({kind})")
        return str(written)
