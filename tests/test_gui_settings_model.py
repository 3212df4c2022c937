"""The settings model and each of its bindings: one change reaches everyone, once.

Every binding is checked both ways: change the model and the panel, the
toolbar, the video view / HUD and the engine show it; change a control and
the model changes exactly once (one ``changed`` for that field, one
``updated``), and the engine runs it.
"""

import pytest

pytest.importorskip("pytestqt")

from PyQt5.QtCore import QPoint, Qt  # noqa: E402

from nirf_overlay.errors import SettingsError  # noqa: E402
from nirf_overlay.gui.settings_model import SettingsModel  # noqa: E402
from nirf_overlay.settings import DISPLAY_MODES, Settings  # noqa: E402

POLYGON = [[40.0, 30.0], [200.0, 40.0], [120.0, 150.0]]


class Announcements:
    """What a model announced: ``changed`` as (name, value) pairs, and every ``updated``."""

    def __init__(self, model):
        self.changed, self.updated = [], []
        model.changed.connect(lambda name, value: self.changed.append((name, value)))
        model.updated.connect(self.updated.append)


@pytest.fixture
def window(show_window, phantom, controlled_source):
    from nirf_overlay.engine import Engine

    return show_window(Engine(controlled_source(), Settings(), phantom.calibration()))


# -- the model ------------------------------------------------------------------------------
def test_set_announces_the_field_once_and_refuses_what_the_schema_refuses(qtbot):
    model = SettingsModel()
    heard = Announcements(model)
    assert model.set("segment.threshold", 2.5) is True
    assert heard.changed == [("segment.threshold", 2.5)]
    assert len(heard.updated) == 1 and heard.updated[0].segment.threshold == 2.5
    assert model.set("segment.threshold", 2.5) is False  # the same value: nothing to say
    with pytest.raises(SettingsError, match="segment.threshold: 50 is outside"):
        model.set("segment.threshold", 50)
    assert model.get("segment.threshold") == 2.5 and len(heard.changed) == 1


def test_replace_announces_each_difference_in_model_order_then_one_update(qtbot):
    model = SettingsModel()
    heard = Announcements(model)
    s = Settings()
    s.plane.polygon = POLYGON
    s.display.mode = "pip"
    s.normalise.temporal_alpha = 0.2
    assert model.replace(s) == ["normalise.temporal_alpha", "display.mode", "plane.polygon"]
    assert [n for n, _ in heard.changed] == ["normalise.temporal_alpha", "display.mode",
                                             "plane.polygon"]
    assert heard.updated == [s]
    assert model.replace(s) == [] and len(heard.updated) == 1


def test_what_the_model_hands_out_is_a_copy(qtbot):
    model = SettingsModel()
    model.set("plane.polygon", POLYGON)
    model.get("plane.polygon").append([0.0, 0.0])
    model.settings.segment.threshold = 9.0
    assert model.get("plane.polygon") == POLYGON and model.get("segment.threshold") == 1.6


# -- model -> every view ------------------------------------------------------------------------
@pytest.mark.parametrize("mode", [m.name for m in DISPLAY_MODES])
def test_display_mode_from_the_model_reaches_panel_toolbar_view_and_engine(window, qtbot,
                                                                          mode):
    window.model.set("display.mode", mode)
    assert window.panel.editor("display.mode").currentData() == mode
    assert window.acts.modes[mode].isChecked()
    assert window.engine.settings.display.mode == mode
    split = [m for m in DISPLAY_MODES if m.name == mode][0].split
    after = window.engine.status().processed + 1
    qtbot.waitUntil(lambda: window.view.frame is not None and window.view.frame.seq > after
                    and window.view.frame_painted, timeout=20_000)
    assert window.view.hud.rims_drawable is not split  # no rim labels on a split picture


@pytest.mark.parametrize("name, value, toolbar", [
    ("display.colormap", "cividis", lambda w: w.toolbar.colormap_box.currentText()),
    ("display.alpha", 0.35, lambda w: w.toolbar.alpha_slider.value() / 100),
    ("display.show_contours", False, lambda w: w.acts.contours.isChecked()),
])
def test_display_setting_from_the_model_reaches_panel_toolbar_and_engine(window, name, value,
                                                                         toolbar):
    window.model.set(name, value)
    editor = window.panel.editor(name)
    shown = {"display.colormap": lambda: editor.currentData(),
             "display.alpha": lambda: editor.value(),
             "display.show_contours": lambda: editor.isChecked()}[name]()
    assert shown == pytest.approx(value)
    assert toolbar(window) == pytest.approx(value)
    assert window.engine.settings.get(name) == pytest.approx(value)


def test_plane_from_the_model_reaches_panel_hud_and_engine(window):
    window.model.set("plane.polygon", POLYGON)
    assert window.view.plane == POLYGON and window.view.hud.plane_set
    assert window.panel.editor("plane.polygon").text().startswith("3 points")
    assert window.panel.clear_polygon_button.isEnabled()
    assert window.engine.settings.plane.polygon == POLYGON
    window.model.set("plane.polygon", [])
    assert window.view.plane == [] and not window.view.hud.plane_set
    assert window.engine.settings.plane.polygon == []


def test_pipeline_setting_from_the_model_reaches_panel_and_engine(window):
    window.model.set("segment.threshold", 3.25)
    assert window.panel.editor("segment.threshold").value() == pytest.approx(3.25)
    assert window.engine.settings.segment.threshold == pytest.approx(3.25)


# -- each control -> the model, once ---------------------------------------------------------------
def test_panel_edit_changes_the_model_once(window):
    heard = Announcements(window.model)
    window.panel.editor("segment.threshold").setValue(2.75)
    assert heard.changed == [("segment.threshold", pytest.approx(2.75))]
    assert len(heard.updated) == 1
    assert window.engine.settings.segment.threshold == pytest.approx(2.75)


def test_toolbar_controls_change_the_model_once_each(window):
    heard = Announcements(window.model)
    box = window.toolbar.colormap_box
    i = box.findText("inferno")
    box.setCurrentIndex(i)
    box.activated.emit(i)
    window.toolbar.alpha_slider.setValue(40)
    window.acts.modes["nir"].trigger()
    window.acts.contours.trigger()
    assert heard.changed == [("display.colormap", "inferno"), ("display.alpha", 0.4),
                             ("display.mode", "nir"), ("display.show_contours", False)]
    assert len(heard.updated) == 4
    assert window.engine.settings.display.colormap == "inferno"


def test_mode_key_changes_the_model_once(window, qtbot):
    heard = Announcements(window.model)
    qtbot.keyClick(window, Qt.Key_2)
    assert heard.changed == [("display.mode", "nir")] and len(heard.updated) == 1


def test_drawn_plane_changes_the_model_once(window, qtbot):
    qtbot.waitUntil(lambda: window.view.frame_painted, timeout=20_000)
    heard = Announcements(window.model)
    window.view.start_drawing()
    for x, y in POLYGON:
        p = window.view.wl_to_view(x, y)
        qtbot.mouseClick(window.view, Qt.LeftButton, pos=QPoint(round(p.x()), round(p.y())))
    qtbot.keyClick(window.view, Qt.Key_Return)
    # the polygon and the frame it was drawn on (where it is anchored), in one update
    assert sorted(n for n, _ in heard.changed) == ["plane.frame", "plane.polygon"]
    assert len(heard.updated) == 1
    assert window.engine.settings.plane.polygon == window.model.get("plane.polygon")


def test_preset_changes_each_differing_field_once_and_the_engine_once(window):
    tuned = Settings()
    tuned.segment.threshold = 2.2
    tuned.display.colormap = "magenta"
    window.panel.model.replace(tuned)
    assert window.panel.save_preset("tuned") is not None
    window.panel.reset_to_defaults()
    heard = Announcements(window.model)
    assert window.panel.load_preset("tuned")
    assert [n for n, _ in heard.changed] == ["segment.threshold", "display.colormap"]
    assert len(heard.updated) == 1  # one update of the pipeline, one line in a recording
    assert window.toolbar.colormap_box.currentText() == "magenta"
    assert window.engine.settings == tuned
