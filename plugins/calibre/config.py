"""The plugin's settings (calibre's JSON prefs, `plugins/stylesearch.json` in calibre's
config folder) and the page that edits them."""

import os

from qt.core import QCheckBox, QFormLayout, QHBoxLayout, QLineEdit, QPushButton, QSpinBox, QWidget

from calibre.gui2 import choose_files
from calibre.utils.config import JSONConfig

from . import logic

prefs = JSONConfig("plugins/stylesearch")
prefs.defaults["executable"] = ""  # empty: auto-detect
prefs.defaults["results"] = 20
prefs.defaults["use_daemon"] = True
prefs.defaults["index_comics"] = False
prefs.defaults["show_dialog"] = True


def client() -> logic.Client:
    """A client with the current settings (read on the GUI thread, used in a job)."""
    return logic.Client(executable=prefs["executable"], use_daemon=prefs["use_daemon"])


class ConfigWidget(QWidget):
    def __init__(self):
        super().__init__()
        form = QFormLayout(self)
        self.executable = QLineEdit(prefs["executable"], self)
        found = logic.autodetect(os.environ)
        self.executable.setPlaceholderText(f"auto-detected: {found}" if found else "not found: install stylesearch or give its path")
        browse = QPushButton("Browse\u2026", self)
        browse.clicked.connect(self.browse)
        row = QHBoxLayout()
        row.addWidget(self.executable)
        row.addWidget(browse)
        form.addRow("stylesearch &executable:", row)
        self.results = QSpinBox(self)
        self.results.setRange(1, 500)
        self.results.setValue(prefs["results"])
        form.addRow("&Number of results:", self.results)
        self.use_daemon = QCheckBox("Use the stylesearch daemon when it runs (answers in milliseconds)", self)
        self.use_daemon.setChecked(prefs["use_daemon"])
        form.addRow(self.use_daemon)
        self.index_comics = QCheckBox("Also index comic files (the first page of CBZ/CBR/PDF), not only covers", self)
        self.index_comics.setChecked(prefs["index_comics"])
        form.addRow(self.index_comics)
        self.show_dialog = QCheckBox("Show a results window (thumbnails, distances, works outside calibre)", self)
        self.show_dialog.setChecked(prefs["show_dialog"])
        form.addRow(self.show_dialog)

    def browse(self):
        chosen = choose_files(self, "stylesearch-executable", "The stylesearch executable", select_only_single_file=True)
        if chosen:
            self.executable.setText(chosen[0])

    def save_settings(self):
        prefs["executable"] = self.executable.text().strip()
        prefs["results"] = self.results.value()
        prefs["use_daemon"] = self.use_daemon.isChecked()
        prefs["index_comics"] = self.index_comics.isChecked()
        prefs["show_dialog"] = self.show_dialog.isChecked()
