"""The object list: each object's id, colour (its label colour) and the frames SAM covered."""

from __future__ import annotations

from dataclasses import dataclass

from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem


@dataclass
class ObjectRow:
    obj_id: int
    rgba: tuple[float, float, float, float]
    frames: str


class ObjectTable(QTableWidget):
    """A read-only table of objects; ``object_selected(obj_id)`` fires on row selection."""

    object_selected = Signal(int)

    def __init__(self, parent=None):
        super().__init__(0, 3, parent)
        self.setHorizontalHeaderLabels(["", "object", "frames"])
        self.verticalHeader().setVisible(False)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.setMinimumHeight(int(self.verticalHeader().defaultSectionSize() * 7.5))
        self.itemSelectionChanged.connect(self._on_selection)
        self._updating = False

    def set_rows(self, rows: list[ObjectRow], current: int | None) -> None:
        self._updating = True
        try:
            self.setRowCount(len(rows))
            for i, row in enumerate(rows):
                swatch = QTableWidgetItem(swatch_icon(row.rgba), "")
                ident = QTableWidgetItem(str(row.obj_id))
                ident.setData(Qt.ItemDataRole.UserRole, row.obj_id)
                self.setItem(i, 0, swatch)
                self.setItem(i, 1, ident)
                self.setItem(i, 2, QTableWidgetItem(row.frames))
                if row.obj_id == current:
                    self.selectRow(i)
        finally:
            self._updating = False

    def selected_ids(self) -> list[int]:
        rows = sorted({index.row() for index in self.selectedIndexes()})
        return [int(self.item(r, 1).data(Qt.ItemDataRole.UserRole)) for r in rows]

    def _on_selection(self) -> None:
        ids = self.selected_ids()
        if ids and not self._updating:
            self.object_selected.emit(ids[-1])


def swatch_icon(rgba, size: int = 14) -> QIcon:
    """A square of the label's colour (an icon stays visible on a selected row)."""
    pixmap = QPixmap(size, size)
    pixmap.fill(QColor.fromRgbF(*[float(c) for c in rgba[:3]], 1.0))
    return QIcon(pixmap)
