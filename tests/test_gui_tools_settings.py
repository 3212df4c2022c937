"""Settings panel over the settings model, presets, the histogram widget (offscreen)."""

import json

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PyQt5.QtCore import Qt  # noqa: E402
from PyQt5.QtWidgets import QCheckBox, QComboBox, QLabel  # noqa: E402

from nirf_overlay.settings import SCHEMA_VERSION, Settings  # noqa: E402
from nirf_overlay.gui.presets import default_presets_dir  # noqa: E402
from nirf_overlay.gui.settings_model import SettingsModel  # noqa: E402
from nirf_overlay.gui.settings_panel import SettingsPanel  # noqa: E402
from nirf_overlay.gui.widgets import (  # noqa: E402
    CheckedDoubleSpinBox,
    CheckedSpinBox,
    HistogramWidget,
    NumberListEdit,
)


@pytest.fixture(autouse=True)
def isolated_config(tmp_path, monkeypatch):
    """Keep presets out of the user's config (conftest fails tests leaving widgets)."""
    monkeypatch.setenv("NIRF_OVERLAY_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture
def panel(qtbot, tmp_path):
    p = SettingsPanel(SettingsModel(Settings()), presets_dir=tmp_path / "presets")
    qtbot.addWidget(p)
    p.show()
    return p


def updates(panel):
    """Every Settings the panel's model announces, in order."""
    seen = []
    panel.model.updated.connect(seen.append)
    return seen


def _type_into(qtbot, box, text):
    box.setFocus()
    box.lineEdit().selectAll()
    qtbot.keyClicks(box.lineEdit(), text)
    qtbot.keyClick(box, Qt.Key_Return)


def test_every_field_has_a_control_with_its_range_and_help(panel):
    names = [n for n, _ in Settings().fields()]
    assert panel.field_names() == names
    for name, f in Settings().fields():
        editor = panel.editor(name)
        meta = f.metadata
        assert meta["help"].split(".")[0] in editor.toolTip(), name
        default = Settings().get(name)
        if isinstance(default, bool):
            assert isinstance(editor, QCheckBox) and editor.isChecked() == default
        elif meta.get("choices"):
            assert isinstance(editor, QComboBox)
            assert [editor.itemData(i) for i in range(editor.count())] == list(meta["choices"])
            assert editor.currentData() == default
        elif isinstance(default, int):
            assert isinstance(editor, CheckedSpinBox)
            assert (editor.minimum(), editor.maximum()) == (meta["lo"], meta["hi"])
            assert editor.value() == default
        elif isinstance(default, float):
            assert isinstance(editor, CheckedDoubleSpinBox)
            assert (editor.minimum(), editor.maximum()) == (meta["lo"], meta["hi"])
            assert editor.value() == pytest.approx(default)
        elif meta.get("kind") == "rect":
            assert isinstance(editor, NumberListEdit) and editor.value() == default
        else:
            assert isinstance(editor, QLabel)  # the polygon, read-only


@pytest.mark.parametrize("name,value", [
    ("segment.threshold", 2.4),
    ("normalise.saturation_fraction", 0.9),
    ("display.alpha", 0.35),
    ("segment.min_core_area_mm2", 120.0),
])
def test_spin_box_change_sets_that_one_setting_once(panel, qtbot, name, value):
    changed = []
    panel.model.changed.connect(lambda n, v: changed.append((n, v)))
    with qtbot.waitSignal(panel.model.updated, timeout=1000) as blocker:
        panel.editor(name).setValue(value)
    assert changed == [(name, pytest.approx(value))]  # once, and nothing else
    emitted = blocker.args[0]
    assert isinstance(emitted, Settings)
    assert emitted.get(name) == pytest.approx(value)
    assert panel.model.get(name) == pytest.approx(value)
    # Everything else is untouched.
    for other, _ in Settings().fields():
        if other != name:
            assert emitted.get(other) == Settings().get(other)


def test_typed_value_choice_and_checkbox_reach_the_model(panel, qtbot):
    seen = updates(panel)
    _type_into(qtbot, panel.editor("segment.threshold"), "3.25")
    assert seen[-1].segment.threshold == pytest.approx(3.25)
    panel.editor("display.mode").setCurrentIndex(panel.editor("display.mode").findData("pip"))
    assert seen[-1].display.mode == "pip"
    panel.editor("display.show_contours").setChecked(False)
    assert seen[-1].display.show_contours is False
    assert seen[-1].segment.threshold == pytest.approx(3.25)  # earlier change kept
    assert len(seen) == 3
    # The emitted object is a copy: changing it does not change the model.
    seen[-1].segment.threshold = 9.0
    assert panel.model.get("segment.threshold") == pytest.approx(3.25)


def test_out_of_range_typed_input_is_refused_in_place(panel, qtbot):
    seen = updates(panel)
    box = panel.editor("segment.threshold")
    _type_into(qtbot, box, "25")
    assert seen == []
    assert panel.model.get("segment.threshold") == pytest.approx(1.6)
    assert box.value() == pytest.approx(1.6)
    assert "25 is outside 1.05..20" in box.reason
    assert "Refused" in box.toolTip() and "#d22" in box.styleSheet()
    assert "Fluorescence threshold" in panel.status_text()
    assert "25 is outside" in panel.status_text()
    # A valid value afterwards is accepted and clears the warning.
    _type_into(qtbot, box, "2")
    assert seen[-1].segment.threshold == pytest.approx(2.0)
    assert box.reason == "" and box.styleSheet() == ""
    assert panel.status_text() == ""


def test_rect_field_accepts_a_rectangle_and_refuses_a_bad_one(panel, qtbot):
    seen = updates(panel)
    roi = panel.editor("levels.roi")
    roi.setFocus()
    qtbot.keyClicks(roi, "10, 20, 300, 200")
    qtbot.keyClick(roi, Qt.Key_Return)
    assert seen[-1].levels.roi == [10, 20, 300, 200]
    roi.selectAll()
    qtbot.keyClicks(roi, "10, 20, 0, 200")  # zero width: the model refuses it
    qtbot.keyClick(roi, Qt.Key_Return)
    assert len(seen) == 1 and panel.model.get("levels.roi") == [10, 20, 300, 200]
    assert "w, h >= 1" in roi.reason and "#d22" in roi.styleSheet()
    assert "Levels region" in panel.status_text()
    roi.selectAll()
    qtbot.keyClicks(roi, "ten")
    qtbot.keyClick(roi, Qt.Key_Return)
    assert "not a list of numbers" in roi.reason and len(seen) == 1
    roi.selectAll()
    qtbot.keyClick(roi, Qt.Key_Delete)
    qtbot.keyClick(roi, Qt.Key_Return)  # empty = whole frame
    assert seen[-1].levels.roi == [] and roi.reason == ""


def test_controls_follow_the_model_without_echoing_back(panel, qtbot):
    s = Settings()
    s.segment.threshold = 4.5
    s.display.mode = "nir"
    s.display.show_saturation = False
    s.plane.polygon = [[10, 10], [200, 10], [100, 150]]
    changed = []
    panel.model.changed.connect(lambda n, v: changed.append(n))
    panel.model.replace(s)
    # one announcement per field that differs, none echoed back by the controls
    assert changed == ["segment.threshold", "display.mode", "display.show_saturation",
                       "plane.polygon"]
    assert panel.editor("segment.threshold").value() == pytest.approx(4.5)
    assert panel.editor("display.mode").currentData() == "nir"
    assert not panel.editor("display.show_saturation").isChecked()
    assert panel.editor("plane.polygon").text().startswith("3 points")
    assert panel.model.settings.to_dict() == s.to_dict()


def test_values_with_more_decimals_are_shown_not_rounded(panel):
    panel.model.set("segment.threshold", 2.345)
    box = panel.editor("segment.threshold")
    assert box.value() == pytest.approx(2.345) and box.text() == "2.345"
    assert panel.model.get("segment.threshold") == 2.345


def test_clear_polygon_sets_an_empty_polygon(panel, qtbot):
    panel.model.set("plane.polygon", [[10, 10], [200, 10], [100, 150]])
    assert panel.clear_polygon_button.isEnabled()
    with qtbot.waitSignal(panel.model.updated, timeout=1000) as blocker:
        qtbot.mouseClick(panel.clear_polygon_button, Qt.LeftButton)
    assert blocker.args[0].plane.polygon == []
    assert panel.editor("plane.polygon").text() == "none drawn"
    assert not panel.clear_polygon_button.isEnabled()


def test_presets_round_trip(panel, qtbot, tmp_path):
    polygon = [[1.0, 2.0], [30.0, 2.0], [15.0, 40.0]]
    tuned = Settings()
    tuned.segment.threshold = 2.75
    tuned.segment.hysteresis = 0.6
    tuned.levels.compression = "gamma"
    tuned.display.colormap = "cividis"
    tuned.normalise.gain_normalise = False
    tuned.plane.polygon = polygon
    panel.model.replace(tuned)

    path = panel.save_preset("after chemo")
    assert path == tmp_path / "presets" / "after chemo.json"
    on_disk = json.loads(path.read_text())
    assert on_disk["schema_version"] == SCHEMA_VERSION and "polygon" not in on_disk["plane"]
    assert Settings.load(path).segment.threshold == pytest.approx(2.75)  # CLI-loadable
    assert panel.preset_names() == ["after chemo"]

    with qtbot.waitSignal(panel.model.updated, timeout=1000) as reset:
        panel.reset_to_defaults()
    expected_default = Settings()
    expected_default.plane.polygon = polygon  # the scene's polygon stays
    assert reset.args[0].to_dict() == expected_default.to_dict()

    with qtbot.waitSignal(panel.model.updated, timeout=1000) as loaded:
        assert panel.load_preset("after chemo")
    assert loaded.args[0] == tuned
    assert panel.model.settings == tuned
    assert panel.editor("levels.compression").currentData() == "gamma"


def test_preset_buttons_and_bad_names(panel, qtbot, tmp_path):
    panel.editor("segment.threshold").setValue(5.0)
    panel.preset_box.setEditText("strong")
    qtbot.mouseClick(panel.findChild(object, "preset_save"), Qt.LeftButton)
    assert (tmp_path / "presets" / "strong.json").is_file()
    qtbot.mouseClick(panel.findChild(object, "preset_defaults"), Qt.LeftButton)
    assert panel.model.get("segment.threshold") == pytest.approx(1.6)
    panel.preset_box.setEditText("strong")
    qtbot.mouseClick(panel.findChild(object, "preset_load"), Qt.LeftButton)
    assert panel.model.get("segment.threshold") == pytest.approx(5.0)

    assert panel.save_preset("../escape") is None
    assert "refused" in panel.status_text()
    assert not (tmp_path / "escape.json").exists()

    # A damaged preset file is reported in the panel and changes nothing.
    (tmp_path / "presets" / "broken.json").write_text('{"segment": {"threshold": 99}}')
    before = panel.model.settings
    assert not panel.load_preset("broken")
    assert "99 is outside" in panel.status_text()
    assert panel.model.settings == before

    panel.preset_box.setEditText("strong")
    qtbot.mouseClick(panel.findChild(object, "preset_delete"), Qt.LeftButton)
    assert panel.preset_names() == ["broken"]


def test_default_presets_dir_honours_override(tmp_path):
    assert default_presets_dir() == tmp_path / "config" / "presets"


def _grab_rgb(widget):
    img = widget.grab().toImage().convertToFormat(4)  # QImage.Format_RGB32
    w, h = img.width(), img.height()
    ptr = img.constBits()
    ptr.setsize(img.byteCount())
    return np.frombuffer(ptr, np.uint8).reshape(h, img.bytesPerLine() // 4, 4)[:, :w, :3].copy()


def test_histogram_paints_bars_and_threshold(qtbot):
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(1.0, 0.15, 20000), rng.normal(3.0, 0.3, 800)])
    hist, edges = np.histogram(values, bins=64, range=(0.0, 5.0))
    w = HistogramWidget()
    qtbot.addWidget(w)
    w.resize(300, 120)
    empty = _grab_rgb(w)
    w.set_histogram(hist, edges[0], edges[-1], threshold=1.6, x_label="x background")
    bgra = _grab_rgb(w)  # BGR order in memory
    assert bgra.shape[:2] == (120, 300)
    green = (bgra[..., 1] > 150) & (bgra[..., 2] < 120) & (bgra[..., 0] > 90)
    red = (bgra[..., 2] > 200) & (bgra[..., 1] < 90) & (bgra[..., 0] < 90)
    assert green.sum() > 500  # the bars are painted
    assert not ((empty[..., 1] > 150) & (empty[..., 2] < 120)).any()
    # The threshold line sits at 1.6 / 5.0 of the plot width (4 px margins).
    # (the column with the most red: the line spans the plot, its label does not).
    expected = 4 + 1.6 / 5.0 * (300 - 8)
    assert red.sum(axis=0).max() > 60
    assert abs(int(np.argmax(red.sum(axis=0))) - expected) <= 2
    # The tallest bars (around 1.0) are left of the threshold, the rim mode (3.0) right.
    heights = green.sum(axis=0)
    assert heights[int(4 + 1.0 / 5 * 292)] > heights[int(4 + 3.0 / 5 * 292)] > 0


def test_histogram_refuses_bad_input(qtbot):
    w = HistogramWidget()
    qtbot.addWidget(w)
    with pytest.raises(ValueError):
        w.set_histogram(np.array([]), 0, 1)
    with pytest.raises(ValueError):
        w.set_histogram(np.ones(4), 1, 1)


def test_panel_forwards_histogram(panel):
    panel.set_histogram(np.arange(10), 0.0, 10.0, threshold=2.0)
    assert panel.histogram.threshold == 2.0
    assert not panel.histogram.grab().isNull()


def test_histogram_marks_the_display_levels_the_percentiles_pick(panel):
    rng = np.random.default_rng(1)
    nir = rng.gamma(3.0, 200.0, 200_000)  # counts, skewed like liver + bright bile
    hist, edges = np.histogram(nir, bins=256, range=(0.0, nir.max()))
    bin_width = edges[1] - edges[0]
    panel.set_histogram(hist, edges[0], edges[-1])
    marks = dict((name, x) for x, name in panel.histogram.markers)
    assert abs(marks["black"] - np.percentile(nir, 1.0)) <= bin_width
    assert abs(marks["white"] - np.percentile(nir, 99.7)) <= bin_width
    # Moving the setting moves the mark at once, on the same histogram.
    panel.editor("levels.low_percentile").setValue(20.0)
    marks = dict((name, x) for x, name in panel.histogram.markers)
    assert abs(marks["black"] - np.percentile(nir, 20.0)) <= bin_width


def test_typing_in_the_panel_is_not_taken_by_window_shortcuts(qtbot, tmp_path):
    """The main window binds 1-6, S, Space, Del, Left/Right...; typing must still type."""
    from PyQt5.QtTest import QTest
    from PyQt5.QtWidgets import QAction, QMainWindow

    win = QMainWindow()
    win.setCentralWidget(QLabel("video"))
    qtbot.addWidget(win)
    fired = []
    for key in ("1", "2", "S", "Space", "Left", "Right", "Del", "."):
        action = QAction(key, win)
        action.setShortcut(key)
        action.triggered.connect(lambda _=False, k=key: fired.append(k))
        win.addAction(action)
    dock = SettingsPanel(SettingsModel(Settings(), win), win, presets_dir=tmp_path / "presets")
    win.addDockWidget(Qt.RightDockWidgetArea, dock)
    win.show()
    win.activateWindow()
    assert QTest.qWaitForWindowActive(win)
    box = dock.editor("segment.threshold")
    box.setFocus()
    box.lineEdit().selectAll()
    qtbot.keyClicks(box.lineEdit(), "2.1")
    qtbot.keyClick(box.lineEdit(), Qt.Key_Left)
    qtbot.keyClick(box.lineEdit(), Qt.Key_Right)
    qtbot.keyClick(box, Qt.Key_Return)
    assert dock.model.get("segment.threshold") == pytest.approx(2.1)
    name = dock.preset_box.lineEdit()
    name.setFocus()
    qtbot.keyClicks(name, "S 12")
    qtbot.keyClick(name, Qt.Key_Delete)
    assert name.text() == "S 12"
    assert fired == []
