"""The Open dialog (a view): files, devices, network streams, sessions, phantom.

(Past 500 lines for now: the dialog, its three source pages and the checks of what was
typed, which the pages and the dialog share. The next split is the pages, ``_StreamPage``,
``_SessionPage`` and ``_PhantomPage``, into a module of their own.)

``dialog.exec_()`` then ``dialog.spec()`` gives a
:class:`~nirf_overlay.sources.SourceSpec`, or None when cancelled.  What the
user typed is checked before the dialog closes (a missing file, a device path
that does not exist, a malformed URL, a folder that is not a recorded
session); the reason appears in the dialog and nothing is raised.  Whether a
stream really decodes is found out when it is opened, and the main window
reports that in plain words.

Recently opened sources are remembered with QSettings (key ``open/recent``,
a JSON list of spec dicts, newest first, at most :data:`MAX_RECENT`), by
default under organisation and application "nirf-overlay" (on Linux
``~/.config/nirf-overlay/nirf-overlay.conf``).  With ``$NIRF_OVERLAY_CONFIG_DIR``
set they go to ``$NIRF_OVERLAY_CONFIG_DIR/nirf-overlay.ini`` instead; tests
set it, or pass ``store=QSettings(path, QSettings.IniFormat)``, so they never
touch the user's settings.

One module past 500 lines on purpose: the pages are small classes that share the
checks of what was typed and the recent list, which belong to this one dialog.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from typing import Optional
from urllib.parse import urlparse

from PyQt5.QtCore import QSettings, Qt
from PyQt5.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ..errors import SourceError
from ..privacy import redact
from ..sources import SourceSpec, check_present, check_spec, classify, kind_of
from .presets import settings_store

__all__ = ["OpenSourceDialog", "MAX_RECENT"]

MAX_RECENT = 10
RECENT_KEY = "open/recent"
LAST_DIR_KEY = "open/last_dir"

_VIDEO_FILTER = ("Video and image files (*.mp4 *.mkv *.avi *.mov *.m4v *.webm *.tif *.tiff "
                 "*.png);;All files (*)")


class InputRefused(Exception):
    """What the user typed cannot be opened; the message is shown in the dialog."""


# -- checks -------------------------------------------------------------------------
# The dialog refuses before it closes what it can tell is wrong, so that the
# user fixes it in place: the source is opened afterwards, on a helper thread,
# and a failure there means starting the dialog again.  The rules that
# open_source applies anyway (one input, --wl with --nir, a session folder, a
# file that is there) are the sources' own (check_spec, check_present); the
# dialog adds only what a tab means (a file on the Files tab, a device on the
# Device tab) and what opening would find out only after a timeout (a device
# node that does not exist, a URL without a host).
def _refused(what: str, error: SourceError) -> InputRefused:
    return InputRefused(f"{what}: {error}")


def _check_file(text: str, what: str) -> str:
    text = text.strip()
    if not text:
        raise InputRefused(f"{what}: choose a file")
    kind = classify(text)
    if kind.live:
        raise InputRefused(f"{what}: {text} is not a file (use the Device or Network tab)")
    try:
        check_present(kind, text)
    except SourceError as e:
        raise _refused(what, e) from None
    return text


def _check_device(text: str, what: str) -> str:
    text = text.strip()
    if not text:
        raise InputRefused(f"{what}: give a device number (0, 1, ...) or /dev/videoN")
    kind = classify(text)
    if kind.kind != "device":
        raise InputRefused(f"{what}: {text!r} is not a device; give a number or /dev/videoN")
    if isinstance(kind.target, str) and not os.path.exists(kind.target):
        raise InputRefused(f"{what}: {text} does not exist (is the camera plugged in?)")
    return text


def _check_url(text: str, what: str) -> str:
    text = text.strip()
    if not text:
        raise InputRefused(f"{what}: give a stream URL, e.g. rtsp://host:8554/nir")
    if classify(text).kind != "url":
        raise InputRefused(f"{what}: {text!r} is not a URL (rtsp://, udp://, http://, ...)")
    parsed = urlparse(text)
    if not (parsed.hostname or parsed.netloc.startswith("@")):
        raise InputRefused(f"{what}: {text!r} names no host")
    return text


_CHECK_INPUT = {"file": _check_file, "sequence": _check_file, "device": _check_device,
                "url": _check_url}


def _check_session(text: str) -> str:
    text = text.strip()
    if not text:
        raise InputRefused("Session: choose a recorded session folder")
    try:
        check_spec(SourceSpec(session=text))
    except SourceError as e:
        raise _refused("Session", e) from None
    return text


def _check_recent(spec: SourceSpec) -> None:
    """Raise :class:`InputRefused` if a remembered ``spec`` names what is not there now."""
    try:
        check_spec(spec)
    except SourceError as e:
        raise InputRefused(str(e)) from None
    names = [("Combined", spec.combined)] if spec.combined else [("WL", spec.wl),
                                                                   ("NIR", spec.nir)]
    for what, text in names:
        if text:
            _CHECK_INPUT[classify(text).kind](text, what)


# -- pages ----------------------------------------------------------------------------
class _StreamPage(QWidget):
    """Two inputs (WL + NIR) or one combined input, for files, devices or URLs."""

    def __init__(self, kind: str, dialog: "OpenSourceDialog"):
        super().__init__()
        self.kind = kind
        self._dialog = dialog
        hints = {
            "file": ("white-light video file", "NIR video file (16-bit: FFV1 MKV or TIFF/PNG)",
                     "video carrying both views"),
            "device": ("0 or /dev/video0", "1 or /dev/video1", "0 or /dev/video0"),
            "url": ("rtsp://host:8554/wl", "rtsp://host:8554/nir", "udp://@:5000"),
        }[kind]
        layout = QVBoxLayout(self)
        self.pair_radio = QRadioButton({"file": "Two files: white light + NIR",
                                        "device": "Two devices: white light + NIR",
                                        "url": "Two streams: white light + NIR"}[kind])
        self.combined_radio = QRadioButton({"file": "One file with both views",
                                            "device": "One device with both views",
                                            "url": "One stream with both views"}[kind])
        group = QButtonGroup(self)
        group.addButton(self.pair_radio)
        group.addButton(self.combined_radio)
        self.pair_radio.setChecked(True)
        layout.addWidget(self.pair_radio)
        pair_form = QFormLayout()
        self.wl = self._input(hints[0])
        self.nir = self._input(hints[1])
        pair_form.addRow("White light", self._with_browse(self.wl))
        pair_form.addRow("NIR", self._with_browse(self.nir))
        layout.addLayout(pair_form)
        layout.addWidget(self.combined_radio)
        comb_form = QFormLayout()
        self.combined = self._input(hints[2])
        self.layout_box = QComboBox()
        self.layout_box.addItem("side by side", "side-by-side")
        self.layout_box.addItem("top and bottom", "top-bottom")
        self.half_box = QComboBox()
        self.layout_box.currentIndexChanged.connect(self._on_layout_changed)
        comb_form.addRow("Input", self._with_browse(self.combined))
        comb_form.addRow("Layout", self.layout_box)
        comb_form.addRow("NIR half", self.half_box)
        layout.addLayout(comb_form)
        common = QFormLayout()
        self.bits_box = QComboBox()
        self.bits_box.addItem("as the stream says", None)
        for bits in range(8, 17):
            self.bits_box.addItem(f"{bits} bits", bits)
        self.bits_box.setToolTip("Significant NIR bits when the stream does not say "
                                 "(e.g. 12 for a 12-bit sensor in a 16-bit container).")
        common.addRow("NIR bit depth", self.bits_box)
        self.loop_box = QCheckBox("Loop at the end", self)
        if kind == "file":  # live inputs have no end
            common.addRow("", self.loop_box)
        else:
            self.loop_box.hide()
        layout.addLayout(common)
        layout.addStretch(1)
        for w in (self.wl, self.nir):
            w.textEdited.connect(lambda _t: self.pair_radio.setChecked(True))
        self.combined.textEdited.connect(lambda _t: self.combined_radio.setChecked(True))
        self._on_layout_changed()

    def _input(self, placeholder: str) -> QLineEdit:
        edit = QLineEdit()
        edit.setPlaceholderText(placeholder)
        edit.setMinimumWidth(320)
        return edit

    def _with_browse(self, edit: QLineEdit) -> QWidget:
        if self.kind != "file":
            return edit
        row = QWidget()
        h = QHBoxLayout(row)
        h.setContentsMargins(0, 0, 0, 0)
        h.addWidget(edit, 1)
        button = QPushButton("Browse...")
        button.clicked.connect(lambda: self._dialog._browse_file(edit))
        h.addWidget(button)
        return row

    def _on_layout_changed(self) -> None:
        halves = ("right", "left") if self.layout_box.currentData() == "side-by-side" \
            else ("bottom", "top")
        self.half_box.clear()
        self.half_box.addItem(f"{halves[0]} (default)", halves[0])
        self.half_box.addItem(halves[1], halves[1])

    def build(self) -> SourceSpec:
        check = {"file": _check_file, "device": _check_device, "url": _check_url}[self.kind]
        spec = SourceSpec(nir_bits=self.bits_box.currentData(),
                          loop=self.kind == "file" and self.loop_box.isChecked())
        if self.combined_radio.isChecked():
            spec.combined = check(self.combined.text(), "Combined input")
            spec.layout = self.layout_box.currentData()
            spec.nir_half = self.half_box.currentData()
            return spec
        spec.wl = check(self.wl.text(), "White light")
        spec.nir = check(self.nir.text(), "NIR")
        if os.path.abspath(spec.wl) == os.path.abspath(spec.nir) and self.kind == "file" \
                or spec.wl == spec.nir:
            raise InputRefused("White light and NIR are the same input; for one input "
                               "carrying both views choose the combined option")
        return spec

    def fill(self, spec: SourceSpec) -> None:
        if spec.combined:
            self.combined_radio.setChecked(True)
            self.combined.setText(spec.combined)
            self.layout_box.setCurrentIndex(max(0, self.layout_box.findData(spec.layout)))
            if spec.nir_half:
                self.half_box.setCurrentIndex(max(0, self.half_box.findData(spec.nir_half)))
        else:
            self.pair_radio.setChecked(True)
            self.wl.setText(spec.wl or "")
            self.nir.setText(spec.nir or "")
        self.bits_box.setCurrentIndex(max(0, self.bits_box.findData(spec.nir_bits)))
        self.loop_box.setChecked(bool(spec.loop))


class _SessionPage(QWidget):
    def __init__(self, dialog: "OpenSourceDialog"):
        super().__init__()
        form = QFormLayout(self)
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("folder written by Record (contains session.json)")
        self.folder.setMinimumWidth(320)
        row = QWidget()
        h = QHBoxLayout(row)
        h.setContentsMargins(0, 0, 0, 0)
        h.addWidget(self.folder, 1)
        browse = QPushButton("Browse...")
        browse.clicked.connect(lambda: dialog._browse_folder(self.folder))
        h.addWidget(browse)
        form.addRow("Session folder", row)
        self.loop_box = QCheckBox("Loop at the end")
        form.addRow("", self.loop_box)

    def build(self) -> SourceSpec:
        return SourceSpec(session=_check_session(self.folder.text()),
                          loop=self.loop_box.isChecked())

    def fill(self, spec: SourceSpec) -> None:
        self.folder.setText(spec.session or "")
        self.loop_box.setChecked(bool(spec.loop))


class _PhantomPage(QWidget):
    def __init__(self):
        super().__init__()
        form = QFormLayout(self)
        form.addRow(QLabel("A synthetic liver with ICG rims, ducts and instruments, "
                           "with known ground truth, for training and testing."))
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.width = QSpinBox()
        self.width.setRange(64, 4096)
        self.width.setSingleStep(16)
        self.width.setValue(1280)
        self.height = QSpinBox()
        self.height.setRange(64, 2160)
        self.height.setSingleStep(16)
        self.height.setValue(720)
        self.fps = QDoubleSpinBox()
        self.fps.setRange(1.0, 120.0)
        self.fps.setDecimals(1)
        self.fps.setValue(30.0)
        size = QWidget()
        h = QHBoxLayout(size)
        h.setContentsMargins(0, 0, 0, 0)
        h.addWidget(self.width)
        h.addWidget(QLabel("x"))
        h.addWidget(self.height)
        h.addWidget(QLabel("pixels"))
        form.addRow("Seed", self.seed)
        form.addRow("Size", size)
        form.addRow("Frame rate", self.fps)
        presets = QComboBox()
        for label, (w, hh, f) in (("720p30", (1280, 720, 30.0)), ("1080p60", (1920, 1080, 60.0)),
                                  ("4K30", (3840, 2160, 30.0))):
            presets.addItem(label, (w, hh, f))
        presets.setCurrentIndex(-1)
        presets.activated.connect(lambda i: self._apply_size(presets.itemData(i)))
        form.addRow("Common sizes", presets)

    def _apply_size(self, data) -> None:
        w, h, f = data
        self.width.setValue(w)
        self.height.setValue(h)
        self.fps.setValue(f)

    def build(self) -> SourceSpec:
        return SourceSpec(phantom=True, seed=self.seed.value(),
                          size=(self.width.value(), self.height.value()), fps=self.fps.value())

    def fill(self, spec: SourceSpec) -> None:
        self.seed.setValue(int(spec.seed))
        w, h = spec.size or (1280, 720)
        self.width.setValue(int(w))
        self.height.setValue(int(h))
        self.fps.setValue(float(spec.fps or 30.0))


# -- the dialog ---------------------------------------------------------------------
class OpenSourceDialog(QDialog):
    """Choose a source to view.

    Parameters
    ----------
    parent : the main window (or None)
    organization, application : QSettings names for the recent list
    store : a QSettings to use instead (tests pass an INI file in a temp dir)
    """

    def __init__(self, parent=None, *, organization: str = "nirf-overlay",
                 application: str = "nirf-overlay", store: Optional[QSettings] = None):
        super().__init__(parent)
        self.setWindowTitle("Open source")
        self.setObjectName("open_source_dialog")
        self.store = store if store is not None else settings_store(organization, application)
        self._spec: Optional[SourceSpec] = None

        layout = QVBoxLayout(self)
        self.tabs = QTabWidget()
        self.recent_list = QListWidget()
        self.recent_list.itemDoubleClicked.connect(lambda _item: self._on_open())
        self.files_page = _StreamPage("file", self)
        self.device_page = _StreamPage("device", self)
        self.network_page = _StreamPage("url", self)
        self.session_page = _SessionPage(self)
        self.phantom_page = _PhantomPage()
        self.tabs.addTab(self.recent_list, "Recent")
        self.tabs.addTab(self.files_page, "Files")
        self.tabs.addTab(self.device_page, "Device")
        self.tabs.addTab(self.network_page, "Network")
        self.tabs.addTab(self.session_page, "Session")
        self.tabs.addTab(self.phantom_page, "Phantom")
        layout.addWidget(self.tabs)
        self.error_label = QLabel("")
        self.error_label.setObjectName("open_error")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #d22; font-weight: bold;")
        self.error_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        layout.addWidget(self.error_label)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Open | QDialogButtonBox.Cancel)
        self.open_button = self.buttons.button(QDialogButtonBox.Open)
        self.buttons.accepted.connect(self._on_open)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.tabs.currentChanged.connect(lambda _i: self.error_label.clear())

        self._load_recent()
        if self.recent_list.count():
            self.recent_list.setCurrentRow(0)
            self.tabs.setCurrentWidget(self.recent_list)
        else:
            self.tabs.setCurrentWidget(self.files_page)

    # -- results ----------------------------------------------------------------------
    def spec(self) -> Optional[SourceSpec]:
        """The chosen source after the dialog was accepted, else None."""
        return self._spec if self.result() == QDialog.Accepted else None

    def error_text(self) -> str:
        return self.error_label.text()

    def page_for(self, spec: SourceSpec) -> QWidget:
        """The tab that edits ``spec`` (used to prefill from a recent entry)."""
        own_tab = {"phantom": self.phantom_page,
                   "session": self.session_page}.get(kind_of(spec).name)
        if own_tab is not None:
            return own_tab
        text = spec.combined or spec.wl or ""
        return {"device": self.device_page,
                "url": self.network_page}.get(classify(text).kind, self.files_page)

    def prefill(self, spec: SourceSpec) -> None:
        """Show ``spec`` in its tab (e.g. the source that is open now)."""
        page = self.page_for(spec)
        page.fill(spec)
        self.tabs.setCurrentWidget(page)

    # -- recent ----------------------------------------------------------------------
    def recent(self) -> list[SourceSpec]:
        raw = self.store.value(RECENT_KEY, "[]")
        try:
            items = json.loads(raw if isinstance(raw, str) else "[]")
            return [SourceSpec.from_dict(d) for d in items if isinstance(d, dict)]
        except (ValueError, TypeError):
            return []  # a damaged entry must not stop the dialog from opening

    def remember(self, spec: SourceSpec) -> None:
        """Put ``spec`` first in the recent list; a URL's password is not kept there
        (nirf_overlay.privacy: the user types it again when reopening)."""
        entry = spec.to_dict()
        for key in ("wl", "nir", "combined"):
            if entry.get(key):
                entry[key] = redact(entry[key])
        items = [s.to_dict() for s in self.recent()]
        items = [entry] + [d for d in items if d != entry]
        self.store.setValue(RECENT_KEY, json.dumps(items[:MAX_RECENT]))
        self.store.sync()

    def clear_recent(self) -> None:
        self.store.remove(RECENT_KEY)
        self.store.sync()
        self._load_recent()

    def _load_recent(self) -> None:
        self.recent_list.clear()
        for spec in self.recent():
            # the user's own list shows whole paths (never a password)
            item = QListWidgetItem(replace(spec, keep_paths=True).describe())
            item.setData(Qt.UserRole, spec)
            item.setToolTip(item.text())
            self.recent_list.addItem(item)

    # -- browsing ----------------------------------------------------------------------
    def _start_dir(self) -> str:
        d = self.store.value(LAST_DIR_KEY, "")
        return d if isinstance(d, str) and os.path.isdir(d) else os.path.expanduser("~")

    def _browse_file(self, edit: QLineEdit) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a video", self._start_dir(),
                                              _VIDEO_FILTER)
        if path:
            edit.setText(path)
            edit.textEdited.emit(path)
            self.store.setValue(LAST_DIR_KEY, os.path.dirname(path))

    def _browse_folder(self, edit: QLineEdit) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a session folder", self._start_dir())
        if path:
            edit.setText(path)
            self.store.setValue(LAST_DIR_KEY, os.path.dirname(path))

    # -- accepting -------------------------------------------------------------------
    def _build(self) -> SourceSpec:
        page = self.tabs.currentWidget()
        if page is self.recent_list:
            item = self.recent_list.currentItem()
            if item is None:
                raise InputRefused("Recent: choose a source, or use another tab")
            spec = item.data(Qt.UserRole)
            try:
                _check_recent(spec)
            except InputRefused as e:
                raise InputRefused(f"{e} (it was there when last opened)") from None
            return spec
        return page.build()

    def _on_open(self) -> None:
        try:
            spec = self._build()
        except InputRefused as e:
            self.error_label.setText(str(e))
            return
        self.error_label.clear()
        self._spec = spec
        self.remember(spec)
        self.accept()
