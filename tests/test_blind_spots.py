"""Tests for what the suite could not see before: each fails if its feature breaks."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from test_gui_window import WAIT_MS, grab, make_window, next_painted  # noqa: E402,F401

RED = np.array([220, 30, 30])


def _red_fraction(strip: np.ndarray) -> float:
    return float(np.mean(np.all(np.abs(strip.astype(int) - RED) <= 12, axis=-1)))


def test_the_transection_plane_band_is_on_the_rendered_picture(qtbot, make_window,
                                                               controlled_source):
    """The red "FLUORESCENCE IN TRANSECTION PLANE" band, checked on the pixels painted:
    across the bottom of the picture while the plane holds fluorescence, gone when cleared."""
    win = make_window(controlled_source())
    frame = next_painted(qtbot, win)
    w, h = frame.pair.size
    rect = win.view.image_rects()[0]
    bottom = slice(int(rect.bottom()) - 8, int(rect.bottom()) - 2)  # inside the band
    cols = slice(int(rect.left()) + 4, int(rect.right()) - 4)
    assert _red_fraction(grab(win)[bottom, cols]) < 0.2  # no plane: no band
    win.model.set("plane.polygon", [[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])
    qtbot.waitUntil(lambda: win.view.hud.plane_flagged and win.view.frame_painted,
                    timeout=WAIT_MS)
    seq = win.view.frame.seq
    next_painted(qtbot, win, seq)
    pic = grab(win)
    band = pic[bottom, cols]
    # red across the width, with the white letters of the warning in its middle
    assert _red_fraction(band) > 0.6, _red_fraction(band)
    middle = pic[int(rect.bottom()) - int(max(14.0, rect.height() / 28.0) * 1.2),
                 int(rect.left() + rect.width() * 0.3): int(rect.left() + rect.width() * 0.7)]
    assert np.any(np.all(middle >= 230, axis=-1)), "the warning's text is painted in the band"
    win.model.set("plane.polygon", [])
    # the view forgets the plane at once; frames already in the pipeline were analysed with
    # it, so wait for one analysed after the clear (a frame or two on a loaded machine)
    qtbot.waitUntil(lambda: win.view.frame.result.plane.polygon is None, timeout=WAIT_MS)
    next_painted(qtbot, win, win.view.frame.seq)
    assert not win.view.hud.plane_set
    assert _red_fraction(grab(win)[bottom, cols]) < 0.2


def test_the_recorder_copies_a_submitted_buffer(tmp_path):
    """A capture loop reuses one buffer: each frame overwritten right after submit must be
    recorded as it was when submitted (the recorder's copy-on-submit)."""
    from dataclasses import replace

    from nirf_overlay.recording import Recorder, SessionSource
    from test_recording import info_for, synthetic_pairs

    pairs = synthetic_pairs(24, seed=7)
    wl_buf, nir_buf = pairs[0].wl.copy(), pairs[0].nir.copy()  # writable, reused
    rec = Recorder(tmp_path / "s", info_for(), min_free_bytes=0, compact=False)
    for p in pairs:
        wl_buf[:], nir_buf[:] = p.wl, p.nir
        assert rec.submit(replace(p, wl=wl_buf, nir=nir_buf), block=True)
        wl_buf[:] = 0  # the caller scribbles on its buffer at once
        nir_buf[:] = 0
    assert not rec.stop().error
    with SessionSource(tmp_path / "s") as src:
        got = list(src)
    assert len(got) == len(pairs)
    for a, b in zip(pairs, got):
        assert np.array_equal(a.nir, b.nir) and np.array_equal(a.wl, b.wl), a.index


def test_a_chunk_that_starts_in_the_wrong_state_is_re_run(tmp_path):
    """Inject a state mismatch: chunks planned with a 2-frame warm-up (far too short for
    the default settings) must be found out by their state digest and re-run until the
    stitched result equals a sequential `process` cell for cell."""
    import csv

    from nirf_overlay.batch import plan_chunks, process_chunk, stitch, verify
    from nirf_overlay.batch.study import write_session
    from nirf_overlay.settings import Settings
    from test_batch import FRAMES, _record, _sequential

    session = _record(tmp_path / "S1", 3)
    settings = Settings()
    settings_file = str(tmp_path / "settings.json")
    settings.save(settings_file)
    chunks = plan_chunks(session, FRAMES, 50, 2)
    assert [c.start - c.warm_start for c in chunks] == [0, 2, 2]
    sd = settings.to_dict()
    results = [process_chunk(ch, sd, None) for ch in chunks]
    assert not any(r.error for r in results)
    assert results[1].warm_digest != results[0].end_digest  # the mismatch is real
    reran = []
    exact, reruns = verify(results, lambda ch: reran.append(ch) or process_chunk(ch, sd, None))
    assert reruns == len(reran) >= 2 and all(ch.warm_start < ch.start - 2 for ch in reran)
    frames, error = stitch(exact)
    assert error is None
    write_session(str(tmp_path / "batch"), frames)
    seq = _sequential(session, str(tmp_path / "seq"), settings_file)
    for table in ("metrics.csv", "rims.csv"):
        got = list(csv.reader(open(tmp_path / "batch" / table, newline="")))
        want = list(csv.reader(open(os.path.join(seq, table), newline="")))
        assert got == want, table


@pytest.mark.parametrize("stop", ["seconds", "SIGTERM", "SIGINT"])
def test_a_live_record_stopped_the_normal_ways_is_complete(tmp_path, stop):
    """A live `record` (the phantom paced in real time) stopped by --seconds, SIGTERM or
    Ctrl-C: a clean session whose every listed frame reads back, and the summary says so."""
    import json
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from nirf_overlay.errors import RecordingError
    from nirf_overlay.recording import SessionSource, read_session

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "s"
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    seconds = "3" if stop == "seconds" else "300"
    proc = subprocess.Popen(
        [sys.executable, "-m", "nirf_overlay", "record", "--phantom", "--realtime", "--size",
         "128x96", "--fps", "30", "--out", str(out), "--seconds", seconds, "--segment-seconds",
         "0.5", "--quiet"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if stop != "seconds":
            deadline = time.monotonic() + 120
            while True:  # wait on the recording (two segments listed), not a fixed sleep
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
                try:
                    if len(read_session(out).segments) >= 2:
                        break
                except RecordingError:
                    pass
                time.sleep(0.1)
            proc.send_signal(getattr(signal, stop))
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    signum = {"SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT}.get(stop)
    # 0, or the conventional 128 + signal number for a stop by signal
    assert proc.returncode in ((0,) if signum is None else (0, 128 + signum)), stderr
    assert "Traceback" not in stderr
    line = stdout.strip().splitlines()[-1]
    assert line.startswith("recorded "), line
    frames = int(line.split()[1])
    meta = json.loads((out / "session.json").read_text())
    assert meta["interrupted"] is False and meta["frames"] == frames > 0
    rows = len((out / "frames.csv").read_text().splitlines()) - 1
    with SessionSource(out) as src:
        assert not src.interrupted
        got = sum(1 for _ in src)
    assert rows == got == frames
    if stop == "seconds":  # about 3 s of 30 fps frames
        assert 60 <= frames <= 100, frames


def test_a_snapshot_taken_while_recording_is_logged_by_file_name(qtbot, make_window,
                                                                  controlled_source, tmp_path):
    """The session's events.jsonl names a snapshot's files, not the folder they went to."""
    import json

    win = make_window(controlled_source(live=True))
    next_painted(qtbot, win)
    out = tmp_path / "Smith John" / "session"
    win.engine.start_recording(out)
    qtbot.waitUntil(lambda: (out / "events.jsonl").exists(), timeout=WAIT_MS)
    win.capture.snapshot(win.engine, win.view, win.engine.settings)
    qtbot.waitUntil(lambda: win.capture.last_snapshot is not None, timeout=WAIT_MS)
    win.engine.stop_recording(wait=True)
    qtbot.waitUntil(lambda: '"stop"' in (out / "events.jsonl").read_text(), timeout=WAIT_MS)
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    snaps = [e for e in events if e.get("kind", e.get("event")) == "snapshot"]
    assert snaps, events
    files = snaps[0]["files"]
    assert files["overlay"].endswith("_overlay.png") and "/" not in files["overlay"]
    assert str(tmp_path) not in (out / "events.jsonl").read_text()
