"""The transection plane as recording events: replay and process anchor it as live."""

from __future__ import annotations

import csv
import json
import time

import numpy as np
import pytest

from nirf_overlay.engine import Engine, Listener, RunState
from nirf_overlay.phantom import PhantomParams
from nirf_overlay.processing.pipeline import Pipeline
from nirf_overlay.recording import SessionSource
from nirf_overlay.recording.plane_events import PlaneSchedule
from nirf_overlay.settings import Settings
from nirf_overlay.sources.phantom_source import PhantomSource

SIZE = (320, 256)
FRAMES = 40
DRAWN, CLEARED = 12, 32  # the plane is drawn on frame 12 and cleared from about frame 32


def _sync(settings, calibration):
    # every frame analysed before it is shown, as process does: the check is comparable
    return Pipeline(settings, calibration)


def _wait(cond, what, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


class _Rows(Listener):
    """Every result's plane cells, by the pair's index."""

    def __init__(self):
        self.rows = {}

    def on_result(self, frame):
        row = frame.result.frame_row()
        self.rows[int(frame.pair.index)] = (row["plane_polygon"] or "",
                                            _cell(row["plane_fluorescence"]))


def _cell(v) -> str:
    return "" if v is None else str(v)


def _square_on_rim(truth, half=10):
    ys, xs = np.nonzero(truth.rim_mask)
    inner = (xs > 3 * half) & (xs < SIZE[0] - 3 * half) & (ys > 3 * half) & (ys < SIZE[1] - 3 * half)
    x, y = float(np.median(xs[inner])), float(np.median(ys[inner]))
    k = int(np.argmin(np.hypot(xs[inner] - x, ys[inner] - y)))
    cx, cy = float(xs[inner][k]), float(ys[inner][k])
    return [[cx - half, cy - half], [cx + half, cy - half], [cx + half, cy + half],
            [cx - half, cy + half]]


def _run(engine, rows, until) -> None:
    engine.add_listener(rows, depth=4 * FRAMES)
    engine.start()
    _wait(until, "the run to end")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A phantom recorded through the engine with a real recorder; the plane drawn on
    frame 12 while recording (as the viewer does: the frame on screen) and cleared later."""
    out = tmp_path_factory.mktemp("plane") / "session"
    src = PhantomSource(PhantomParams(seed=41, size=SIZE, fps=15.0), frames=FRAMES)
    polygon = _square_on_rim(src.phantom.frame(DRAWN).truth)
    eng = Engine(src, Settings(), src.own_calibration(), pipeline_factory=_sync)
    live = _Rows()
    try:
        eng.start_recording(out)  # before the first frame: the recording has all of them
        _wait(lambda: eng.recording_status()["state"] == "on", "the recorder")
        engine_ended = lambda: eng.state == RunState.ENDED  # noqa: E731
        eng.add_listener(live, depth=4 * FRAMES)
        eng.start()
        _wait(lambda: (eng.position or 0) >= DRAWN, "frame 12")
        s = eng.settings.copy()
        s.plane.polygon, s.plane.frame = polygon, DRAWN
        eng.update_settings(s)
        _wait(lambda: (eng.position or 0) >= CLEARED, "frame 32")
        s = eng.settings.copy()
        s.plane.polygon = []
        eng.update_settings(s)
        _wait(engine_ended, "the end of the phantom")
        eng.stop_recording(wait=True)
        assert not eng.recording_status()["error"]
    finally:
        eng.stop()
    frames = list(csv.DictReader(open(out / "frames.csv")))
    assert len(frames) == FRAMES and all(r["not_written_before"] == "0" for r in frames)
    by_source = {int(r["source_index"]): int(r["index"]) for r in frames}
    return out, {by_source[i]: v for i, v in live.rows.items()}


def test_the_plane_drawn_while_recording_is_an_event(recorded):
    out, live = recorded
    events = [json.loads(line) for line in open(out / "events.jsonl")]
    planes = [e for e in events if e["kind"] == "plane"]
    assert len(planes) == 2
    drawn, cleared = planes
    assert drawn["anchor"] == DRAWN and len(drawn["polygon"]) == 4
    assert DRAWN < drawn["frame"] <= DRAWN + 3  # the first frame processed with it
    assert cleared["polygon"] == [] and cleared["frame"] >= CLEARED
    anchored = [e for e in events if e["kind"] == "plane_anchored"]
    assert [(e["frame"], e["anchor"]) for e in anchored] == [(drawn["frame"], DRAWN)]
    # live, the plane is in the rows exactly from the plane event's frame to the clearing
    with_plane = sorted(i for i, (poly, _) in live.items() if poly)
    assert with_plane == list(range(drawn["frame"], cleared["frame"]))
    schedule = PlaneSchedule.from_events(events)
    assert schedule.at(drawn["frame"] - 1) == ([], -1)
    assert schedule.at(drawn["frame"])[1] == DRAWN
    assert schedule.at(cleared["frame"]) == ([], -1)


def test_process_of_the_session_anchors_the_plane_as_live(recorded, tmp_path):
    from nirf_overlay.cli import main

    out, live = recorded
    res = tmp_path / "out"
    assert main(["process", str(out), "--out", str(res), "--no-video", "--no-progress"]) == 0
    rows = list(csv.DictReader(open(res / "metrics.csv")))
    got = {int(r["frame"]): (r["plane_polygon"], r["plane_fluorescence"]) for r in rows}
    assert got == live
    assert {f for _, f in live.values() if f} >= {"1"}  # drawn on the rim: flagged


def test_replay_in_the_viewer_engine_anchors_the_plane_as_live(recorded):
    out, live = recorded
    eng = Engine(SessionSource(out), Settings(), pipeline_factory=_sync, pace=False)
    rows = _Rows()
    try:
        _run(eng, rows, lambda: eng.state == RunState.ENDED)
    finally:
        eng.stop()
    assert rows.rows == live


def test_a_plane_given_in_the_settings_replaces_the_recorded_one(recorded, tmp_path):
    from nirf_overlay.cli import main

    out, live = recorded
    settings = tmp_path / "s.json"
    settings.write_text(json.dumps({"plane": {"polygon": [[20, 20], [60, 20], [60, 60]]}}))
    res = tmp_path / "out"
    assert main(["process", str(out), "--out", str(res), "--no-video", "--no-progress",
                 "--settings", str(settings)]) == 0
    rows = list(csv.DictReader(open(res / "metrics.csv")))
    assert rows[0]["plane_polygon"] == "20.0 20.0;60.0 20.0;60.0 60.0"


def test_a_plane_from_before_the_recording_is_written_where_it_is_then():
    """Drawn on a frame that was not recorded: anchored at the first recorded frame,
    with the polygon where it is there; lost and cleared are events."""
    from nirf_overlay.processing.result import PlaneCheck
    from nirf_overlay.recording.plane_events import PlaneEventWriter

    drawn = np.array([[10.0, 10.0], [40.0, 10.0], [40.0, 40.0]])
    moved = drawn + [3.0, 1.0]
    writer = PlaneEventWriter({100: 0, 101: 1, 102: 2, 103: 3}.get)  # source -> recording
    tracked = PlaneCheck(polygon=moved, drawn=drawn, drawn_frame=90)
    assert writer.note(100, tracked) == [
        ("plane", {"frame": 0, "polygon": moved.tolist(), "anchor": 0}),
        ("plane_anchored", {"frame": 0, "anchor": 0})]
    assert writer.note(101, tracked) == []
    lost = PlaneCheck(known=False, polygon=moved, drawn=drawn, drawn_frame=90,
                      lost_reason="tracking lost")
    assert writer.note(102, lost) == [("plane_lost", {"frame": 2, "reason": "tracking lost"})]
    assert writer.note(103, PlaneCheck()) == [("plane", {"frame": 3, "polygon": [], "anchor": -1})]
    schedule = PlaneSchedule.from_events(
        [{"kind": "plane", "frame": 0, "polygon": moved.tolist(), "anchor": 0},
         {"kind": "plane", "frame": 3, "polygon": [], "anchor": -1}])
    assert schedule.at(2) == (moved.tolist(), 0) and schedule.at(3) == ([], -1)
    assert schedule.first_frame == 0


def test_the_viewer_shows_the_recorded_plane_where_it_was_live(recorded, qtbot, tmp_path):
    """Replaying the session in the window: the plane appears at the frame it was drawn
    and is drawn where the pipeline followed it (the model holds no plane of the user's)."""
    pytest.importorskip("pytestqt")
    from nirf_overlay.gui.main_window import MainWindow

    out, live = recorded
    first = min(i for i, (poly, _) in live.items() if poly)
    eng = Engine(SessionSource(out), Settings(), pipeline_factory=_sync)
    win = MainWindow(eng, snapshot_dir=tmp_path / "snaps", recording_dir=tmp_path / "rec",
                     presets_dir=tmp_path / "presets")
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    view = win.view
    seen = {}

    def shown():
        f = view.frame
        if f is not None and view.frame_painted:
            seen[int(f.pair.index)] = (view.hud.plane_set, view.hud.plane_polygon)
        return any(i >= first + 3 for i in seen)

    qtbot.waitUntil(shown, timeout=60_000)
    assert win.model.get("plane.polygon") == []
    before = [s for i, (s, _) in seen.items() if i < first]
    after = {i: v for i, v in seen.items() if first <= i < first + 10}
    assert after and not any(before)
    for i, (plane_set, polygon) in after.items():
        assert plane_set
        assert ";".join(f"{x:.1f} {y:.1f}" for x, y in polygon) == live[i][0]
