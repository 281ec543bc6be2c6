"""The widget's "Segment everything" group: controls over ``Sam2Controller.segment_everything``.

``build_everything_group(widget)`` builds the group and connects it; the widget only adds it
to its layout. "Segment and track" propagates with the widget's Propagate settings.
"""

from __future__ import annotations

from qtpy.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
)

POINTS_PER_SIDE = 24  # = engine.automatic.AutomaticOptions().points_per_side (torch-free here)


class EverythingGroup(QGroupBox):
    """Points per side, "only empty pixels" / replace, Segment everything, Segment and track,
    Cancel, and a progress bar in grid points."""

    def __init__(self, widget):
        super().__init__("Segment everything")
        self.widget = widget
        c = widget.controller
        form = QFormLayout(self)
        self.points_spin = QSpinBox()
        self.points_spin.setRange(4, 96)
        self.points_spin.setValue(POINTS_PER_SIDE)
        self.points_spin.setToolTip("Grid of points per side prompted on the frame: denser finds "
                                    "smaller objects and costs (points per side)^2 decodes")
        self.replace_check = QCheckBox("replace the labels on this frame")
        self.replace_check.setToolTip("Off: new objects take only empty pixels and new ids, "
                                      "existing labels stay as they are")
        self.segment_button = QPushButton("Segment everything")
        self.segment_button.setToolTip("Find every object on the shown frame (new labels)")
        self.track_button = QPushButton("Segment and track")
        self.track_button.setToolTip("Segment everything, then propagate every new object "
                                     "(with the Propagate settings below)")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress_bar = QProgressBar()
        self.speed_label = QLabel("")
        form.addRow("points per side", self.points_spin)
        form.addRow(self.replace_check)
        row = QHBoxLayout()
        for button in (self.segment_button, self.track_button, self.cancel_button):
            row.addWidget(button)
        form.addRow(row)
        form.addRow(self.progress_bar)
        form.addRow(self.speed_label)
        self.segment_button.clicked.connect(lambda: self.run(track=False))
        self.track_button.clicked.connect(lambda: self.run(track=True))
        self.cancel_button.clicked.connect(c.cancel)
        c.everything_progress.connect(self.on_progress)
        c.busy_changed.connect(self.on_busy)

    def options(self):
        from napari_sam2.engine.automatic import AutomaticOptions

        return AutomaticOptions(points_per_side=int(self.points_spin.value()))

    def run(self, *, track: bool) -> bool:
        w = self.widget
        propagate = {}
        if track:
            propagate = {"direction": w._direction_combo.currentText(),
                         "stop_after_absent": w._stop_spin.value() or None}
        return w.controller.segment_everything(self.options(),
                                               replace=self.replace_check.isChecked(),
                                               track=track, **propagate)

    def on_progress(self, done: int, total: int, rate: float) -> None:
        """Grid points done of total; (0, 0) when the job has ended."""
        if total == 0:
            self.progress_bar.reset()
            self.speed_label.setText("")
            return
        self.progress_bar.setMaximum(max(total, 1))
        self.progress_bar.setValue(done)
        self.speed_label.setText(f"{done}/{total} points, {rate:.0f} points/s")

    def on_busy(self, busy: bool) -> None:
        self.cancel_button.setEnabled(busy)
        self.segment_button.setEnabled(not busy)
        self.track_button.setEnabled(not busy)

    def disconnect_from(self, c) -> None:
        c.everything_progress.disconnect(self.on_progress)
        c.busy_changed.disconnect(self.on_busy)
