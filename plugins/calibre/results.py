"""A small window listing every result with a thumbnail and its distance, including works
outside this calibre library (the user's other indexed folders), which cannot be marked."""

import os

from qt.core import QDialog, QIcon, QListView, QListWidget, QListWidgetItem, QPixmap, QSize, Qt, QVBoxLayout

from calibre.gui2 import open_local_file

THUMB = QSize(120, 160)


class ResultsDialog(QDialog):
    def __init__(self, gui, title, results, cover_of):
        super().__init__(gui)
        self.gui = gui
        self.setWindowTitle(title)
        self.list = QListWidget(self)
        self.list.setViewMode(QListView.ViewMode.IconMode)
        self.list.setIconSize(THUMB)
        self.list.setResizeMode(QListView.ResizeMode.Adjust)
        self.list.setWordWrap(True)
        for result in results:
            picture = (cover_of(result.book_id) if result.book_id is not None else None) or result.path
            where = "in this library" if result.book_id is not None else os.path.basename(result.path)
            item = QListWidgetItem(QIcon(QPixmap(picture).scaled(THUMB, Qt.AspectRatioMode.KeepAspectRatio)),
                                   f"#{result.rank}  {result.distance:.3f}\n{where}")
            item.setToolTip(result.path)
            item.setData(Qt.ItemDataRole.UserRole, result)
            self.list.addItem(item)
        self.list.itemActivated.connect(self.open)
        layout = QVBoxLayout(self)
        layout.addWidget(self.list)
        self.resize(720, 480)

    def open(self, item):
        """A book: select it in the book list; a file outside calibre: open it."""
        result = item.data(Qt.ItemDataRole.UserRole)
        if result.book_id is not None:
            self.gui.library_view.select_rows([result.book_id])
        else:
            open_local_file(result.path)
