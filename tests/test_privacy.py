"""Security and privacy: a URL's password and a file's folders never reach what is shown,
logged or written (nirf_overlay.privacy), unless the user asks (--keep-paths)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from nirf_overlay.errors import NirfError, SourceError
from nirf_overlay.privacy import redact, shown_name
from nirf_overlay.sources import SourceSpec

ROOT = Path(__file__).resolve().parents[1]
SECRET = "s3cr3t-Pw"


def _cli(*args, cwd=None, timeout=120):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               QT_QPA_PLATFORM="offscreen")
    return subprocess.run([sys.executable, "-m", "nirf_overlay", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_redact_keeps_the_user_and_hides_the_password():
    assert redact(f"rtsp://admin:{SECRET}@10.1.2.3:554/live?x=1") == "rtsp://admin:***@10.1.2.3:554/live?x=1"
    assert redact(f"a http://u:{SECRET}@h/ and rtsps://v:{SECRET}@k/s b") == \
        "a http://u:***@h/ and rtsps://v:***@k/s b"
    for untouched in ("udp://@:5000", "rtsp://host/stream", "/clinic/a:b@c.mp4", "plain"):
        assert redact(untouched) == untouched
    assert SECRET not in str(SourceError(f"rtsp://u:{SECRET}@h/x: cannot open"))
    assert SECRET not in str(NirfError(f"udp://u:{SECRET}@h:5000: cannot open"))


def test_descriptions_name_files_not_folders_unless_asked():
    spec = SourceSpec(wl="/clinic/Smith John/wl.mp4", nir=f"rtsp://cam:{SECRET}@h/nir")
    assert spec.describe() == "WL wl.mp4 + NIR rtsp://cam:***@h/nir"
    spec.keep_paths = True
    assert spec.describe() == "WL /clinic/Smith John/wl.mp4 + NIR rtsp://cam:***@h/nir"
    assert SourceSpec(session="/clinic/Smith John/S1/").describe() == "S1"
    assert SourceSpec(combined="/dev/video2").describe() == "combined /dev/video2"
    assert shown_name("rec/S1") == "S1" and shown_name("rec/S1", keep_paths=True) == "rec/S1"


def test_a_refused_stream_says_refused_and_never_echoes_the_password():
    port = _free_port()  # nothing listens there
    url = f"rtsp://admin:{SECRET}@127.0.0.1:{port}/live"
    p = _cli("process", "--combined", url, "--out", "unused-out", timeout=60)
    assert p.returncode == 2, p.stderr
    assert SECRET not in p.stderr + p.stdout
    line = p.stderr.strip().splitlines()[-1]
    assert f"rtsp://admin:***@127.0.0.1:{port}/live" in line
    assert "refused" in line and "nothing usable received" not in line


def test_a_stream_that_accepts_but_sends_nothing_is_told_apart(tmp_path):
    with socket.socket() as server:  # accepts the TCP connection, never speaks RTSP
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        port = server.getsockname()[1]
        p = _cli("process", "--combined", f"rtsp://u:{SECRET}@127.0.0.1:{port}/x", "--out",
                 tmp_path / "o", timeout=90)
    assert p.returncode == 2
    line = p.stderr.strip().splitlines()[-1]
    assert "accepts connections, but nothing usable received" in line and SECRET not in p.stderr


@pytest.fixture(scope="module")
def patient_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clinic") / "Smith John 1950-01-01"
    folder.mkdir()
    for name in ("sample_wl.mp4", "sample_nir.mkv"):
        shutil.copy(ROOT / "sample_videos" / name, folder / name)
    shutil.copytree(ROOT / "calibration" / "sample", folder / "cal")
    return folder


@pytest.mark.parametrize("keep", [False, True])
def test_sessions_store_file_names_unless_keep_paths(tmp_path, patient_folder, keep):
    out = tmp_path / "session"
    profile = patient_folder / "cal" / "profile.json"
    curve = patient_folder / "curve.csv"  # a LUT outside the profile's folder
    curve.write_text("display,linear\n0,0\n0.5,0.25\n1,1\n")
    p = _cli("record", "--wl", patient_folder / "sample_wl.mp4", "--nir",
             patient_folder / "sample_nir.mkv", "--calibration", profile, "--nir-transfer",
             f"lut:{curve}", "--out", out, "--seconds", "0.2", "--quiet",
             *(["--keep-paths"] if keep else []))
    assert p.returncode == 0, p.stderr
    written = "".join(f.read_text() for f in (out / "session.json", out / "events.jsonl",
                                                out / "calibration" / "profile.json"))
    meta = json.loads((out / "session.json").read_text())
    assert "sample_wl.mp4" in meta["source"]["description"]
    assert meta["calibration_source"] == (str(profile) if keep else "profile.json")
    assert (patient_folder.name in written) == keep
    from nirf_overlay.calibration.profile import load_profile

    recorded = load_profile(str(out / "calibration" / "profile.json"))  # whole: its LUT beside it
    assert recorded.nir_transfer.points[1] == (0.0, 0.25, 1.0)
    assert patient_folder.name not in (out / "calibration" / "profile.json").read_text()


@pytest.mark.parametrize("keep", [False, True])
def test_snapshots_name_the_calibration_by_its_file_unless_keep_paths(tmp_path, patient_folder,
                                                                      keep):
    import numpy as np

    from nirf_overlay.calibration.profile import load_profile
    from nirf_overlay.processing.result import FrameResult, PlaneCheck
    from nirf_overlay.snapshot import write_snapshot
    from nirf_overlay.sources import open_source

    profile = patient_folder / "cal" / "profile.json"
    spec = SourceSpec(wl=str(patient_folder / "sample_wl.mp4"),
                      nir=str(patient_folder / "sample_nir.mkv"), keep_paths=keep)
    with open_source(spec) as src:
        pair = src.read()
        info = src.info
    h, w = pair.wl.shape[:2]
    result = FrameResult(index=0, time_s=0.0, composite=pair.wl, rim_mask=np.zeros((h, w), np.uint8),
                         rims=[], plane=PlaneCheck())
    paths = write_snapshot(tmp_path / "snaps", pair, result, source_info=info,
                           calibration=load_profile(str(profile)))
    text = Path(paths["metrics"]).read_text()
    assert json.loads(text)["calibration"]["path"] == (str(profile) if keep else "profile.json")
    assert (patient_folder.name in text) == keep


def test_what_a_session_writes_about_itself_names_its_folder_only(tmp_path, patient_folder):
    """A write error carries the whole path of the session; events.jsonl and session.json
    name the session by its own folder's name (privacy.shown_in)."""
    from nirf_overlay.frame import SourceInfo
    from nirf_overlay.recording.session_writer import SessionWriter
    from nirf_overlay.settings import Settings

    out = patient_folder.parent / "sessions-Smith John" / "S1"
    writer = SessionWriter(str(out), min_free_bytes=0)
    writer.start(SourceInfo("WL wl.mp4 + NIR nir.mkv", (64, 48), 30.0), Settings(), None,
                 size=(64, 48), fps=30.0, nir_bits=16, nir_codec="ffvhuff", compact=False,
                 wl_codec="ffv1", segment_frames=30, label=None)
    failure = f"{out}/seg_000001_nir.mkv: write failed (Input/output error); recording stopped"
    writer.add_event("error", 1.0, 3, {"message": failure})
    writer.finish(stop_reason=failure, error=failure)
    written = (out / "events.jsonl").read_text() + (out / "session.json").read_text()
    assert "S1/seg_000001_nir.mkv: write failed" in written
    assert "Smith John" not in written


def test_batch_names_a_failed_session_by_its_folder_in_summary_and_report(tmp_path,
                                                                          patient_folder,
                                                                          replay_session):
    from nirf_overlay.cli import main

    out = tmp_path / "study"
    good = shutil.copytree(replay_session[0], patient_folder / "S0")
    assert main(["batch", str(good), str(patient_folder / "S1"), "--out", str(out),
                 "--workers", "1", "--no-progress"]) == 0  # one of two read: a warning, exit 0
    written = (out / "summary.csv").read_text() + (out / "report.html").read_text()
    assert "S1: not a directory" in written
    assert patient_folder.name not in written


def test_the_recent_list_never_keeps_a_password(qtbot, tmp_path):
    from PyQt5.QtCore import QSettings

    from nirf_overlay.gui.open_dialog import OpenSourceDialog

    store = QSettings(str(tmp_path / "recent.ini"), QSettings.IniFormat)
    dlg = OpenSourceDialog(None, store=store)
    qtbot.addWidget(dlg)
    dlg.remember(SourceSpec(combined=f"rtsp://cam:{SECRET}@127.0.0.1:8554/both"))
    dlg.remember(SourceSpec(wl="/clinic/Smith/wl.mp4", nir="/clinic/Smith/nir.mkv"))
    store.sync()
    assert SECRET not in (tmp_path / "recent.ini").read_text()
    assert [s.combined for s in dlg.recent()][1] == "rtsp://cam:***@127.0.0.1:8554/both"
    dlg._load_recent()  # the user's own list shows whole paths, never a password
    shown = [dlg.recent_list.item(i).text() for i in range(dlg.recent_list.count())]
    assert shown == ["WL /clinic/Smith/wl.mp4 + NIR /clinic/Smith/nir.mkv",
                     "combined rtsp://cam:***@127.0.0.1:8554/both"]


@pytest.mark.parametrize("where", ["dir", "no-folder"])
def test_an_output_file_that_cannot_be_written_is_refused_before_the_run(tmp_path, where):
    target = tmp_path if where == "dir" else tmp_path / "missing" / "stats.json"
    p = _cli("view", "--phantom", "--exit-after", "30", "--stats-json", target, timeout=60)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    line = p.stderr.strip().splitlines()[-1]
    assert line.startswith("nirf-overlay: error: --stats-json")
    assert ("is a directory" if where == "dir" else "no such folder") in line
