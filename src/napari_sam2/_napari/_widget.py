"""The docked SAM 2 widget (Plugins > SAM 2): Qt controls wired to a ``Sam2Controller``.

Handlers are small methods that read the controls and call the controller, so tests can set
the private controls and call ``_on_propagate()`` and friends directly, or click the buttons.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from napari_sam2._napari._controller import DEFAULT_MODEL, Sam2Controller
from napari_sam2._napari._everything_panel import EverythingGroup
from napari_sam2._napari._objects import ObjectRow, ObjectTable
from napari_sam2._napari._stack import frame_ranges
from napari_sam2._napari._windows import DEFAULT_WINDOW_PIXELS, WINDOW_MODES, window_setting

if TYPE_CHECKING:
    import napari

NEW_LABELS = "<new labels layer>"
UNDO_KEY = "Alt-Z"
CANCEL_KEY = "Escape"  # cancels a division being marked
KEYS_HELP = (
    "Left-click: object   Alt+click or right-click: background\n"
    "Draw a rectangle on 'SAM boxes' for a box prompt   "
    f"{UNDO_KEY}: undo the last SAM write\n"
    "The selected object is also the Labels brush's label (paint to correct it)"
)


def model_choices() -> list[str]:
    from napari_sam2.model.config import VARIANTS

    names = list(VARIANTS)
    names.sort(key=lambda n: (n != DEFAULT_MODEL, n))
    return names


def device_choices() -> list[tuple[str, str]]:
    """(label, device) of the device picker; the CPU reads "cpu (bf16)" where the engine will
    run it in bfloat16 (a CPU with native bfloat16, see ``engine/device.py``)."""
    from napari_sam2.engine.device import available_devices, uses_bfloat16

    names = ["auto", *[d for d in available_devices() if d != "auto"]]
    return [(f"{d} (bf16)" if d == "cpu" and uses_bfloat16("cpu") else d, d) for d in names]


def _row(*widgets) -> QHBoxLayout:
    """The widgets side by side."""
    row = QHBoxLayout()
    for widget in widgets:
        row.addWidget(widget)
    return row


class Sam2Widget(QWidget):
    """Segment and track objects with SAM 2 in the current napari viewer."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.controller = Sam2Controller(napari_viewer)
        self._chosen_image = None  # the image layer last picked (accepted or refused)
        self._build()
        self._connect()
        self._refresh_layers()
        self._on_image_chosen()

    # ------------------------------------------------------------------ build
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        self._everything = EverythingGroup(self)
        for group in (self._build_data(), self._build_model(), self._build_objects(),
                      self._everything, self._build_propagate()):
            layout.addWidget(group)
        self._undo_button = QPushButton(f"Undo last SAM write ({UNDO_KEY})")
        layout.addWidget(self._undo_button)
        self._status_label = QLabel("")
        self._status_label.setWordWrap(True)
        layout.addWidget(self._status_label)
        layout.addStretch(1)
        self._slice_timer = QTimer(self)
        self._slice_timer.setSingleShot(True)
        self._slice_timer.setInterval(120)

    def _build_data(self) -> QGroupBox:
        group = QGroupBox("Data")
        form = QFormLayout(group)
        self._image_combo, self._labels_combo = QComboBox(), QComboBox()
        self._axis_combo = QComboBox()
        form.addRow("image", self._image_combo)
        form.addRow("labels", self._labels_combo)
        form.addRow("track along", self._axis_combo)
        return group

    def _build_model(self) -> QGroupBox:
        group = QGroupBox("Model")
        form = QFormLayout(group)
        self._model_combo = QComboBox()
        self._model_combo.addItems(model_choices())
        self._checkpoint_edit = QLineEdit()
        self._checkpoint_edit.setPlaceholderText("optional local file (.pt, .safetensors)")
        self._browse_button = QPushButton("...")
        self._device_combo = QComboBox()
        for label, name in device_choices():
            self._device_combo.addItem(label, name)
        self._load_button = QPushButton("Load model")
        form.addRow("variant", self._model_combo)
        form.addRow("checkpoint", _row(self._checkpoint_edit, self._browse_button))
        form.addRow("device", self._device_combo)
        form.addRow(self._load_button)
        form.addRow("window", self._build_window())
        return group

    def _build_window(self) -> QHBoxLayout:
        """Whole frame / auto (from the object) / N px: small objects in large images."""
        self._window_combo = QComboBox()
        self._window_combo.addItems(WINDOW_MODES)
        self._window_combo.setToolTip("Segment each object in a window around it, at native "
                                      "pixel size (small objects in large or huge images)")
        self._window_spin = QSpinBox()
        self._window_spin.setRange(16, 1 << 16)
        self._window_spin.setValue(DEFAULT_WINDOW_PIXELS)
        self._window_spin.setSuffix(" px")
        self._window_spin.setEnabled(False)
        return _row(self._window_combo, self._window_spin)

    def _on_window(self, *_) -> None:
        mode = self._window_combo.currentText()
        self._window_spin.setEnabled(mode == WINDOW_MODES[2])
        self.controller.set_window(window_setting(mode, self._window_spin.value()))

    def _build_objects(self) -> QGroupBox:
        group = QGroupBox("Objects")
        box = QVBoxLayout(group)
        self._keys_label = QLabel(KEYS_HELP)
        self._keys_label.setWordWrap(True)
        self._new_button, self._delete_button = QPushButton("New object"), QPushButton("Delete")
        self._table = ObjectTable()
        self._mask_button = QPushButton("Painted mask as prompt")
        self._mask_button.setToolTip("Use the selected object's pixels on this frame as its prompt")
        self._track_all_button = QPushButton("Track all labels here")
        self._track_all_button.setToolTip(
            "Every label on this frame (e.g. from Cellpose) becomes an object"
        )
        box.addWidget(self._keys_label)
        box.addLayout(_row(self._new_button, self._delete_button))
        box.addWidget(self._table)
        box.addLayout(_row(self._mask_button, self._track_all_button))
        self._divide_button = QPushButton("Mark division")
        self._divide_button.setToolTip(
            "On the first frame where the selected cell has split: press, then click each "
            "daughter (two clicks; each becomes a new object). The parent's track ends on the "
            "frame before. Esc cancels."
        )
        self._export_button = QPushButton("Export tracks...")
        self._export_button.setToolTip(
            "Save the labels' tracks and lineage: a Cell Tracking Challenge folder, GEFF or CSV"
        )
        box.addLayout(_row(self._divide_button, self._export_button))
        return group

    def _build_propagate(self) -> QGroupBox:
        group = QGroupBox("Propagate")
        form = QFormLayout(group)
        self._direction_combo = QComboBox()
        self._direction_combo.addItems(["forward", "backward", "both"])
        self._all_frames_check = QCheckBox("all frames")
        self._all_frames_check.setChecked(True)
        self._first_spin, self._last_spin = QSpinBox(), QSpinBox()
        self._objects_combo = QComboBox()
        self._objects_combo.addItems(["all objects", "selected objects"])
        self._stop_spin = QSpinBox()
        self._stop_spin.setRange(0, 999)
        self._stop_spin.setSpecialValueText("never")  # 0
        self._stop_spin.setSuffix(" empty frames in a row")
        self._stop_spin.setToolTip(
            "Stop tracking an object once SAM has not found it on this many frames in a row "
            "(on by default along z, where objects end; off along t, where they come back)"
        )
        self._divisions_check = QCheckBox("find cell divisions (forward)")
        self._divisions_check.setToolTip(
            "While propagating forward, a mask that splits into two parts that stay apart "
            "becomes two daughters (new objects) and the parent's track ends (docs/lineage.md). "
            "On by default along t, off along z"
        )
        self._follow_check = QCheckBox("follow frames while propagating")
        self._follow_check.setChecked(True)
        self._overwrite_check = QCheckBox("SAM may overwrite other labels")
        self._propagate_button = QPushButton("Propagate")
        self._cancel_button = QPushButton("Cancel")
        self._cancel_button.setEnabled(False)
        self._progress_bar = QProgressBar()
        self._speed_label = QLabel("")
        form.addRow("direction", self._direction_combo)
        form.addRow("range", _row(self._all_frames_check, self._first_spin, self._last_spin))
        form.addRow("objects", self._objects_combo)
        form.addRow("stop after", self._stop_spin)
        form.addRow(self._divisions_check)
        form.addRow(self._follow_check)
        form.addRow(self._overwrite_check)
        form.addRow(_row(self._propagate_button, self._cancel_button))
        form.addRow(self._progress_bar)
        form.addRow(self._speed_label)
        return group

    def _connect(self) -> None:
        c = self.controller
        c.status.connect(self._on_status)
        c.objects_changed.connect(self._refresh_objects)
        c.progress.connect(self._on_progress)
        c.busy_changed.connect(self._on_busy)
        self._image_combo.currentIndexChanged.connect(self._on_image_chosen)
        self._labels_combo.activated.connect(self._on_labels_chosen)
        self._axis_combo.currentIndexChanged.connect(self._on_axis_chosen)
        self._browse_button.clicked.connect(self._on_browse)
        self._load_button.clicked.connect(self._on_load)
        self._window_combo.currentIndexChanged.connect(self._on_window)
        self._window_spin.editingFinished.connect(self._on_window)
        self._new_button.clicked.connect(self._on_new_object)
        self._delete_button.clicked.connect(self._on_delete)
        self._table.object_selected.connect(c.select_object)
        self._mask_button.clicked.connect(lambda: c.mask_as_prompt())
        self._track_all_button.clicked.connect(lambda: c.mask_as_prompt("all"))
        self._propagate_button.clicked.connect(self._on_propagate)
        self._cancel_button.clicked.connect(c.cancel)
        self._undo_button.clicked.connect(c.undo)
        self._divide_button.clicked.connect(self._on_divide)
        self._export_button.clicked.connect(self._on_export)
        self._all_frames_check.toggled.connect(self._on_all_frames)
        self._follow_check.toggled.connect(lambda on: setattr(c, "follow", on))
        self._overwrite_check.toggled.connect(lambda on: setattr(c, "overwrite", on))
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self.viewer.dims.events.current_step.connect(self._on_slice_changed)
        self._slice_timer.timeout.connect(c.prefetch_current)
        self.viewer.bind_key(UNDO_KEY, lambda viewer: c.undo(), overwrite=True)
        self._on_all_frames(True)

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        """Stop background work and detach from the viewer when the dock widget closes."""
        if getattr(self, "_closed", False):
            return super().closeEvent(event)
        self._closed = True
        self.controller.close()
        c = self.controller  # a job that still returns must not reach the deleted controls
        for signal, slot in ((c.status, self._on_status), (c.progress, self._on_progress),
                             (c.objects_changed, self._refresh_objects),
                             (c.busy_changed, self._on_busy)):
            signal.disconnect(slot)
        self._everything.disconnect_from(c)
        self.viewer.layers.events.inserted.disconnect(self._refresh_layers)
        self.viewer.layers.events.removed.disconnect(self._refresh_layers)
        self.viewer.dims.events.current_step.disconnect(self._on_slice_changed)
        self.viewer.bind_key(UNDO_KEY, None, overwrite=True)
        self._bind_cancel(False)
        super().closeEvent(event)

    # ------------------------------------------------------------------ layers
    def _layers_of(self, kind: str) -> list:
        import napari

        cls = {"image": napari.layers.Image, "labels": napari.layers.Labels}[kind]
        return [layer for layer in self.viewer.layers if isinstance(layer, cls)]

    def _refresh_layers(self, event=None) -> None:
        combos = ((self._image_combo, "image", []), (self._labels_combo, "labels", [NEW_LABELS]))
        for combo, kind, extra in combos:
            current = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems([layer.name for layer in self._layers_of(kind)] + extra)
            index = combo.findText(current)
            combo.setCurrentIndex(index if index >= 0 else 0)
            combo.blockSignals(False)
        # the combo shows the layer in use, or <new labels layer> until there is one
        labels = self.controller.labels_layer
        self._labels_combo.blockSignals(True)
        self._labels_combo.setCurrentText(NEW_LABELS if labels is None else labels.name)
        self._labels_combo.blockSignals(False)
        image = self._selected("image", self._image_combo)
        if image != self._chosen_image:  # a new pick (a refused one is not re-reported)
            self._on_image_chosen()

    def _selected(self, kind: str, combo: QComboBox):
        for layer in self._layers_of(kind):
            if layer.name == combo.currentText():
                return layer
        return None

    def _on_image_chosen(self, index=None) -> None:
        self._chosen_image = self._selected("image", self._image_combo)
        self._reset_progress()
        if not self.controller.set_image_layer(self._chosen_image):
            return
        self._axis_combo.blockSignals(True)
        self._axis_combo.clear()
        self._axis_combo.addItems(self.controller.axis_names())
        if self.controller.stack_axis is not None:
            self._axis_combo.setCurrentIndex(self.controller.stack_axis)
        self._axis_combo.blockSignals(False)
        self._update_stack_defaults()
        self.controller.prefetch_current()

    def _on_labels_chosen(self, index=None) -> None:
        self.controller.set_labels_layer(self._selected("labels", self._labels_combo))
        self._refresh_layers()

    def _on_axis_chosen(self, index: int) -> None:
        if index >= 0:
            self.controller.set_stack_axis(index)
            self._update_stack_defaults()

    def _update_stack_defaults(self) -> None:
        self._stop_spin.setValue(self.controller.default_stop_after_absent() or 0)
        self._divisions_check.setChecked(self.controller.default_detect_divisions())
        n = max(self.controller.num_frames(), 1)
        for spin in (self._first_spin, self._last_spin):
            spin.setRange(0, n - 1)
        self._first_spin.setValue(0)
        self._last_spin.setValue(n - 1)

    # ------------------------------------------------------------------ handlers
    def _on_browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "SAM 2 checkpoint", "", "Checkpoints (*.pt *.pth *.safetensors)"
        )
        if path:
            self._checkpoint_edit.setText(path)

    def _on_load(self) -> None:
        self.controller.load_model(
            self._model_combo.currentText(), self._checkpoint_edit.text().strip() or None,
            self._device_combo.currentData(),
        )

    def _on_new_object(self) -> None:
        self.controller.new_object()
        self._refresh_layers()

    def _on_delete(self) -> None:
        self.controller.delete_objects(self._table.selected_ids() or [self.controller.current_obj])

    def _on_all_frames(self, on: bool) -> None:
        self._first_spin.setEnabled(not on)
        self._last_spin.setEnabled(not on)

    def _on_propagate(self) -> None:
        frame_range = None
        if not self._all_frames_check.isChecked():
            frame_range = (self._first_spin.value(), self._last_spin.value())
        obj_ids = None
        if self._objects_combo.currentIndex() == 1:  # selected objects
            obj_ids = self._table.selected_ids() or [self.controller.current_obj]
        self.controller.propagate(self._direction_combo.currentText(), frame_range, obj_ids,
                                  stop_after_absent=self._stop_spin.value() or None,
                                  divisions=self._divisions_check.isChecked())

    def _on_divide(self) -> None:
        """Start marking a division, or cancel the one being marked (the button toggles)."""
        if self.controller.division is not None:
            self.controller.cancel_division()
        else:
            self.controller.mark_division()

    def _bind_cancel(self, on: bool) -> None:
        """Esc cancels the division being marked (bound only meanwhile; what Esc did before
        is bound again after)."""
        if on and getattr(self, "_esc_before", None) is None:
            before = self.viewer.bind_key(CANCEL_KEY, lambda viewer: self.controller
                                          .cancel_division(), overwrite=True)
            self._esc_before = (before,)
        elif not on and getattr(self, "_esc_before", None) is not None:
            (before,), self._esc_before = self._esc_before, None
            self.viewer.bind_key(CANCEL_KEY, before, overwrite=True)

    def _on_export(self) -> None:
        from napari_sam2._napari._export import EXPORT_FILTERS

        path, chosen = QFileDialog.getSaveFileName(
            self, "Export tracks", "", ";;".join(EXPORT_FILTERS.values())
        )
        if path:
            kind = next(k for k, f in EXPORT_FILTERS.items() if f == chosen) if chosen else None
            self.controller.export_tracks(path, kind)

    def _on_status(self, text: str) -> None:
        self._status_label.setText(text)

    def _on_slice_changed(self, event=None) -> None:
        self._slice_timer.start()

    def _on_progress(self, done: int, total: int, fps: float) -> None:
        """Frames done of total; (0, 0) means nothing is in progress (after a cancel)."""
        if total == 0:
            self._reset_progress()
            return
        self._progress_bar.setMaximum(max(total, 1))
        self._progress_bar.setValue(done)
        self._speed_label.setText(f"{done}/{total} frames, {fps:.1f} frames/s")

    def _reset_progress(self) -> None:
        self._progress_bar.reset()
        self._speed_label.setText("")

    def _on_busy(self, busy: bool) -> None:
        self._cancel_button.setEnabled(busy)
        self._propagate_button.setEnabled(not busy)
        self._load_button.setEnabled(not busy)

    def _refresh_objects(self) -> None:
        c = self.controller
        marking = c.division is not None
        self._divide_button.setText("Cancel division (Esc)" if marking else "Mark division")
        self._bind_cancel(marking)
        rows = []
        for obj in sorted(c.objects):
            layer = c.labels_layer
            rgba = tuple(layer.get_color(obj)) if layer is not None else (1, 1, 1, 1)
            rows.append(ObjectRow(obj, rgba, frame_ranges(c.frames_covered(obj))))
        self._table.set_rows(rows, c.current_obj)
        self._refresh_layers()
