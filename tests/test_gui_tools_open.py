"""The Open dialog returns the right SourceSpec and refuses bad input in place."""

import pytest

pytest.importorskip("pytestqt")

from PyQt5.QtCore import QSettings, Qt  # noqa: E402
from PyQt5.QtWidgets import QDialog  # noqa: E402

from nirf_overlay.gui.open_dialog import OpenSourceDialog  # noqa: E402
from nirf_overlay.sources import SourceSpec  # noqa: E402


@pytest.fixture
def store(tmp_path):
    return QSettings(str(tmp_path / "recent.ini"), QSettings.IniFormat)


@pytest.fixture
def make_dialog(qtbot, store):
    def make():
        dlg = OpenSourceDialog(None, store=store)
        qtbot.addWidget(dlg)
        dlg.show()
        return dlg
    return make


@pytest.fixture
def videos(tmp_path):
    wl = tmp_path / "wl.mp4"
    nir = tmp_path / "nir.mkv"
    both = tmp_path / "both.mkv"
    for p in (wl, nir, both):
        p.write_bytes(b"\0" * 16)
    session = tmp_path / "case01"
    session.mkdir()
    (session / "session.json").write_text("{}")
    return {"wl": str(wl), "nir": str(nir), "both": str(both), "session": str(session),
            "tmp": tmp_path}


def _open(qtbot, dlg):
    qtbot.mouseClick(dlg.open_button, Qt.LeftButton)


def test_two_files(make_dialog, qtbot, videos):
    dlg = make_dialog()
    dlg.tabs.setCurrentWidget(dlg.files_page)
    dlg.files_page.wl.setText(videos["wl"])
    dlg.files_page.nir.setText(videos["nir"])
    dlg.files_page.bits_box.setCurrentIndex(dlg.files_page.bits_box.findData(12))
    dlg.files_page.loop_box.setChecked(True)
    _open(qtbot, dlg)
    assert dlg.result() == QDialog.Accepted
    assert dlg.spec() == SourceSpec(wl=videos["wl"], nir=videos["nir"], nir_bits=12, loop=True)


def test_combined_file_layout_and_half(make_dialog, qtbot, videos):
    dlg = make_dialog()
    page = dlg.files_page
    dlg.tabs.setCurrentWidget(page)
    page.combined_radio.setChecked(True)
    page.combined.setText(videos["both"])
    page.layout_box.setCurrentIndex(page.layout_box.findData("top-bottom"))
    assert [page.half_box.itemData(i) for i in range(page.half_box.count())] == ["bottom", "top"]
    page.half_box.setCurrentIndex(page.half_box.findData("top"))
    _open(qtbot, dlg)
    assert dlg.spec() == SourceSpec(combined=videos["both"], layout="top-bottom", nir_half="top")


def test_missing_file_is_refused_in_the_dialog(make_dialog, qtbot, videos):
    dlg = make_dialog()
    dlg.tabs.setCurrentWidget(dlg.files_page)
    missing = str(videos["tmp"] / "nope.mkv")
    dlg.files_page.wl.setText(videos["wl"])
    dlg.files_page.nir.setText(missing)
    _open(qtbot, dlg)  # must not raise
    assert dlg.isVisible() and dlg.result() != QDialog.Accepted
    assert dlg.spec() is None
    assert dlg.error_text().startswith(f"NIR: {missing}: no such file; give a video file")
    dlg.files_page.nir.setText(videos["wl"])
    _open(qtbot, dlg)
    assert "same input" in dlg.error_text()
    dlg.files_page.nir.setText("rtsp://host/nir")
    _open(qtbot, dlg)
    assert "Network tab" in dlg.error_text()
    dlg.files_page.nir.setText(videos["nir"])
    _open(qtbot, dlg)
    assert dlg.spec() == SourceSpec(wl=videos["wl"], nir=videos["nir"])


def test_a_folder_or_a_missing_sequence_folder_is_refused_as_open_source_would(make_dialog, qtbot,
                                                                            videos):
    dlg = make_dialog()
    dlg.tabs.setCurrentWidget(dlg.files_page)
    dlg.files_page.wl.setText(str(videos["tmp"]))
    dlg.files_page.nir.setText(videos["nir"])
    _open(qtbot, dlg)
    assert dlg.error_text().startswith(
        f"White light: {videos['tmp']}: is a directory, not a video file; give an image pattern")
    pattern = str(videos["tmp"] / "nope" / "%06d.tiff")
    dlg.files_page.wl.setText(videos["wl"])
    dlg.files_page.nir.setText(pattern)
    _open(qtbot, dlg)
    assert dlg.error_text().startswith(f"NIR: {pattern}: no such folder {videos['tmp'] / 'nope'}; give")
    assert dlg.spec() is None


def test_devices(make_dialog, qtbot):
    dlg = make_dialog()
    page = dlg.device_page
    dlg.tabs.setCurrentWidget(page)
    page.wl.setText("0")
    page.nir.setText("/dev/video987")
    _open(qtbot, dlg)
    assert "/dev/video987 does not exist" in dlg.error_text()
    page.nir.setText("camera")
    _open(qtbot, dlg)
    assert "is not a device" in dlg.error_text()
    page.nir.setText("1")
    _open(qtbot, dlg)
    assert dlg.spec() == SourceSpec(wl="0", nir="1")


def test_combined_device(make_dialog, qtbot):
    dlg = make_dialog()
    page = dlg.device_page
    dlg.tabs.setCurrentWidget(page)
    page.combined.setText("2")
    page.combined.textEdited.emit("2")  # typing selects the combined option
    assert page.combined_radio.isChecked()
    _open(qtbot, dlg)
    assert dlg.spec() == SourceSpec(combined="2", layout="side-by-side", nir_half="right")


def test_network_urls(make_dialog, qtbot):
    dlg = make_dialog()
    page = dlg.network_page
    dlg.tabs.setCurrentWidget(page)
    page.wl.setText("rtsp://127.0.0.1:8554/wl")
    page.nir.setText("not a url")
    _open(qtbot, dlg)
    assert "is not a URL" in dlg.error_text()
    page.nir.setText("rtsp:///nir")
    _open(qtbot, dlg)
    assert "names no host" in dlg.error_text()
    page.nir.setText("rtsp://127.0.0.1:8554/nir")
    _open(qtbot, dlg)
    assert dlg.spec() == SourceSpec(wl="rtsp://127.0.0.1:8554/wl", nir="rtsp://127.0.0.1:8554/nir")


def test_session_folder(make_dialog, qtbot, videos):
    dlg = make_dialog()
    dlg.tabs.setCurrentWidget(dlg.session_page)
    dlg.session_page.folder.setText(str(videos["tmp"]))
    _open(qtbot, dlg)
    assert "not a recorded session (no session.json)" in dlg.error_text()
    dlg.session_page.folder.setText(videos["wl"])
    _open(qtbot, dlg)
    assert "a single file is not a source" in dlg.error_text()
    dlg.session_page.folder.setText(videos["session"])
    dlg.session_page.loop_box.setChecked(True)
    _open(qtbot, dlg)
    assert dlg.spec() == SourceSpec(session=videos["session"], loop=True)


def test_phantom(make_dialog, qtbot):
    dlg = make_dialog()
    page = dlg.phantom_page
    dlg.tabs.setCurrentWidget(page)
    page.seed.setValue(7)
    page.width.setValue(640)
    page.height.setValue(360)
    page.fps.setValue(60)
    _open(qtbot, dlg)
    assert dlg.spec() == SourceSpec(phantom=True, seed=7, size=(640, 360), fps=60.0)


def test_cancel_gives_none(make_dialog, qtbot, videos):
    dlg = make_dialog()
    dlg.files_page.wl.setText(videos["wl"])
    dlg.files_page.nir.setText(videos["nir"])
    dlg.reject()
    assert dlg.spec() is None


def test_recent_sources_are_remembered_newest_first(make_dialog, qtbot, videos, store):
    first = make_dialog()
    assert first.tabs.currentWidget() is first.files_page  # nothing recent yet
    first.tabs.setCurrentWidget(first.phantom_page)
    _open(qtbot, first)
    second = make_dialog()
    second.tabs.setCurrentWidget(second.session_page)
    second.session_page.folder.setText(videos["session"])
    _open(qtbot, second)

    third = make_dialog()
    assert third.tabs.currentWidget() is third.recent_list
    texts = [third.recent_list.item(i).text() for i in range(third.recent_list.count())]
    # the one description of a spec, SourceSpec.describe
    assert texts == [videos["session"], "phantom(seed=0)"]
    third.recent_list.setCurrentRow(1)
    _open(qtbot, third)
    assert third.spec() == SourceSpec(phantom=True, seed=0, size=(1280, 720), fps=30.0)
    assert [s.phantom for s in third.recent()] == [True, False]  # moved to the top, no duplicate

    # A remembered session that has gone away is refused with the reason.
    import shutil
    shutil.rmtree(videos["session"])
    fourth = make_dialog()
    fourth.recent_list.setCurrentRow(1)
    _open(qtbot, fourth)
    assert fourth.spec() is None and "no such file or directory" in fourth.error_text()
    # A remembered pair whose file has gone is refused naming the file.
    fourth.remember(SourceSpec(wl=videos["wl"], nir=str(videos["tmp"] / "gone.mkv")))
    fifth = make_dialog()
    fifth.recent_list.setCurrentRow(0)
    _open(qtbot, fifth)
    assert fifth.error_text().startswith(f"NIR: {videos['tmp'] / 'gone.mkv'}: no such file; give")
    assert fifth.error_text().endswith("(it was there when last opened)")
    # Prefilling puts a spec back into its tab for editing.
    fourth.prefill(SourceSpec(wl="0", nir="1"))
    assert fourth.tabs.currentWidget() is fourth.device_page
    assert fourth.device_page.nir.text() == "1"
    for spec, page in [(SourceSpec(combined="rtsp://h/both"), fourth.network_page),
                       (SourceSpec(wl=videos["wl"], nir=videos["nir"]), fourth.files_page),
                       (SourceSpec(phantom=True, seed=4), fourth.phantom_page),
                       (SourceSpec(session=videos["session"]), fourth.session_page)]:
        assert fourth.page_for(spec) is page


def test_damaged_recent_entry_does_not_break_the_dialog(make_dialog, store):
    store.setValue("open/recent", "{not json")
    dlg = make_dialog()
    assert dlg.recent() == [] and dlg.recent_list.count() == 0


def test_config_dir_override_keeps_recent_out_of_the_users_settings(qtbot, monkeypatch, tmp_path):
    monkeypatch.setenv("NIRF_OVERLAY_CONFIG_DIR", str(tmp_path / "cfg"))
    dlg = OpenSourceDialog(None)
    qtbot.addWidget(dlg)
    assert dlg.store.fileName() == str(tmp_path / "cfg" / "nirf-overlay.ini")
    dlg.tabs.setCurrentWidget(dlg.phantom_page)
    _open(qtbot, dlg)
    assert (tmp_path / "cfg" / "nirf-overlay.ini").is_file()
