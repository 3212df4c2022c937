"""The viewer engine: worker thread, latest-wins mailbox, errors, replay, A/B, snapshots.

Every test drives real phantom frames through the real Pipeline; the sources
are real FrameSource subclasses whose behaviour (stall, lose NIR, fail) the
test controls (the ``controlled_source`` fixture).  No timed asserts: waits
have generous deadlines and only bound how long a failure takes to show.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from nirf_overlay.engine import Engine, LatestMailbox, Listener, RunState
from nirf_overlay.errors import NirfError
from nirf_overlay.frame import SourceInfo
from nirf_overlay.settings import Settings

def wait_for(cond, timeout=20.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def take_next(engine, after_seq=0, timeout=20.0):
    """The next result produced after ``after_seq``."""
    def get():
        item = engine.latest()
        return item if item is not None and item.seq > after_seq else None
    return wait_for(get, timeout, "a result")


@pytest.fixture
def make_engine(phantom):
    engines = []

    def make(source, settings=None, *, start=True, **kw):
        eng = Engine(source, settings or Settings(), phantom.calibration(), **kw)
        engines.append(eng)
        return eng.start() if start else eng

    yield make
    for e in engines:
        e.stop()


# -- mailbox ---------------------------------------------------------------------------------
def test_mailbox_latest_wins_and_counts_drops():
    box = LatestMailbox()
    assert box.take() is None
    assert box.put(1) is False
    assert box.put(2) is True  # 1 was never read
    assert box.put(3) is True
    assert box.take() == 3
    assert box.take() is None
    assert (box.put_count, box.dropped) == (3, 2)


def test_core_imports_without_qt():
    code = ("import sys; sys.modules['PyQt5'] = None\n"
            "import nirf_overlay.engine, nirf_overlay.snapshot\n"
            "assert not any(m.startswith('PyQt5') and sys.modules[m] for m in sys.modules)\n")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- worker ----------------------------------------------------------------------------------
def test_every_frame_is_shown_or_counted_as_dropped(frames, controlled_source, make_engine,
                                                    phantom_size):
    src = controlled_source(live=False)
    eng = make_engine(src, pace=False)  # as fast as it goes: the slow reader below drops some
    shown = []
    while True:
        item = eng.latest()
        if item is not None:
            shown.append(item)
            assert item.result.index == item.pair.index
            assert item.composite.shape == (phantom_size[1], phantom_size[0], 3)
            assert item.composite.dtype == np.uint8
            assert item.processed >= item.arrival > 0
        if eng.status().state == "ended" and eng.mailbox.put_count == eng.status().processed:
            last = eng.latest()
            if last is not None:
                shown.append(last)
            break
        time.sleep(0.02)
    st = eng.status()
    assert st.captured == st.processed == len(frames)
    assert len(shown) + eng.dropped == len(frames)
    assert [i.index for i in shown] == sorted(i.index for i in shown)
    assert shown[-1].index == len(frames) - 1  # the newest always wins


@pytest.mark.parametrize("live", [True, False])  # False: read through the read-ahead thread
def test_source_error_is_reported_in_words_and_engine_recovers(frames, controlled_source,
                                                               make_engine, live):
    src = controlled_source(live=live)
    eng = make_engine(src, loop=True)
    first = take_next(eng)
    src.fail = "camera 0: unplugged"
    wait_for(lambda: "unplugged" in eng.status().error, what="the error in the status")
    err = eng.status().error
    assert "Traceback" not in err and "\n" not in err
    assert eng.running
    src.fail = ""
    wait_for(lambda: eng.status().error == "", what="the error to clear")
    later = take_next(eng, first.seq)
    assert later.index > first.index


def test_nir_lost_is_flagged_and_clears(frames, controlled_source, make_engine):
    src = controlled_source(live=True)
    eng = make_engine(src)
    src.nir_lost = True
    item = wait_for(lambda: (lambda i: i if i is not None and i.pair.nir is None else None)(
        eng.latest()), what="a pair without NIR")
    assert item.nir_lost and eng.status().nir_lost
    src.nir_lost = False
    wait_for(lambda: (lambda i: i is not None and i.pair.nir is not None)(eng.latest()),
             what="NIR back")
    wait_for(lambda: not eng.status().nir_lost, what="nir_lost to clear")


def test_stalled_live_source_keeps_engine_responsive(frames, controlled_source, make_engine):
    src = controlled_source(live=True)
    eng = make_engine(src)
    take_next(eng)
    src.stalled.set()
    # wait on the engine noticing the stall, not a fixed sleep
    wait_for(lambda: eng.status().source["status"] == "reconnecting", what="reconnecting")
    before = eng.status().last_frame_time
    eng.latest()
    time.sleep(0.3)
    assert eng.latest() is None  # nothing new while stalled
    assert eng.status().last_frame_time == before
    assert eng.status().source["status"] == "reconnecting"
    src.stalled.clear()
    after = take_next(eng)
    assert after.arrival > before


def take_analysed(engine, after_seq=0, min_index=-1):
    """The next result whose rims come from an analysis of frame >= ``min_index``
    (the live pipeline analyses on its own thread, a frame or two behind)."""
    item = take_next(engine, after_seq)
    while item.result.analysis_index is None or item.result.analysis_index < min_index:
        item = take_next(engine, item.seq)
    return item


def test_settings_change_reaches_the_next_frame(frames, controlled_source, make_engine):
    src = controlled_source(live=True)
    eng = make_engine(src)
    first = take_analysed(eng)
    assert first.result.rims, "the phantom's rim is found with default settings"
    s = eng.settings.copy()
    s.segment.threshold = 19.0  # nothing is that bright: no rims
    s.display.colormap = "inferno"
    eng.update_settings(s)
    seq_at_change = eng.status().processed
    # the frame in flight may still use the old settings; the one after must not:
    # its display at once, its rims from the first analysis of a frame after the change
    item = take_next(eng, seq_at_change + 1)
    assert eng.pipeline.settings.display.colormap == "inferno"
    item = take_analysed(eng, seq_at_change + 1, min_index=item.pair.index)
    assert item.result.rims == []


def test_live_display_does_not_wait_for_the_analysis(frames, controlled_source, make_engine):
    """The overlay of a frame is drawn from that frame; its rims from the newest
    finished analysis, never from a later frame."""
    src = controlled_source(live=True)
    eng = make_engine(src)
    item = take_analysed(eng)
    for _ in range(10):
        item = take_next(eng, item.seq)
        r = item.result
        assert r.index == item.pair.index
        assert r.analysis_index is None or r.analysis_index <= r.index


# -- replay ----------------------------------------------------------------------------------
def test_seek_step_pause_and_loop(frames, controlled_source, make_engine):
    src = controlled_source(live=False)
    eng = make_engine(src, pace=True, loop=False)
    assert eng.seekable and eng.frame_count == len(frames)
    eng.pause()
    eng.seek(7)
    item = take_next(eng)
    assert item.index == 7 and eng.position == 7
    time.sleep(0.2)
    assert eng.latest() is None  # paused: nothing more
    eng.step(+1)
    assert take_next(eng, item.seq).index == 8
    eng.step(-1)
    item = take_next(eng, item.seq)
    assert item.index == 7
    assert np.array_equal(item.pair.nir, frames[7].nir)  # frame N on screen is frame N
    with pytest.raises(NirfError):
        eng.set_speed(8)
    eng.set_speed(4.0)
    eng.set_loop(True)
    eng.resume()
    seen, wrapped = [], False
    end = time.monotonic() + 20
    while time.monotonic() < end and not wrapped:
        it = eng.latest()
        if it is not None:
            wrapped = bool(seen) and it.index < seen[-1]
            seen.append(it.index)
        time.sleep(0.002)
    assert wrapped and max(seen) >= len(frames) - 3  # it ran to the end and wrapped round


def test_paced_replay_keeps_native_rate_order(frames, controlled_source, make_engine):
    src = controlled_source(live=False, fps=100.0)
    eng = make_engine(src, pace=True)
    items = []
    while len(items) < 5:
        it = eng.latest()
        if it is not None:
            items.append(it)
        time.sleep(0.001)
    arrivals = [i.arrival for i in items]
    assert arrivals == sorted(arrivals)
    # paced: the engine re-stamps arrival when it releases the frame on schedule
    assert all(i.processed >= i.arrival for i in items)


def test_ab_runs_second_settings_on_the_same_pair(frames, controlled_source, make_engine):
    src = controlled_source(live=False)
    eng = make_engine(src, pace=True, loop=True)
    b = eng.settings.copy()
    b.display.colormap = "magenta"
    eng.set_ab(b)
    item = wait_for(lambda: (lambda i: i if i is not None and i.result_b is not None else None)(
        eng.latest()), what="an A/B result")
    assert item.composite_b.shape == item.composite.shape
    rim = item.pair.truth.rim_mask
    a = item.composite[rim].astype(int).mean(axis=0)  # BGR
    bb = item.composite_b[rim].astype(int).mean(axis=0)
    assert a[1] > a[2] and a[1] > a[0]  # green over the rim
    assert bb[2] > bb[1] and bb[0] > bb[1]  # magenta: red and blue over green
    eng.set_ab(None)
    wait_for(lambda: (lambda i: i is not None and i.result_b is None)(eng.latest()),
             what="A/B off")


def test_stop_closes_source(frames, controlled_source, phantom):
    src = controlled_source(live=True)
    eng = Engine(src, Settings(), phantom.calibration()).start()
    take_next(eng)
    eng.stop()
    assert src.closed and not eng.running


# -- snapshot -------------------------------------------------------------------------------
def test_snapshot_files_complete_and_nir_bit_identical(frames, phantom, tmp_path, phantom_size):
    import cv2
    import tifffile

    from nirf_overlay.processing.pipeline import Pipeline
    from nirf_overlay.snapshot import write_snapshot

    pair = dataclasses.replace(frames[2])
    pair.nir = pair.nir.copy()
    pair.nir[0, 0] = 4095  # a count at the 12-bit edge must survive
    settings = Settings()
    result = Pipeline(settings, phantom.calibration()).process(pair)
    paths = write_snapshot(tmp_path / "snaps", pair, result, settings=settings,
                           source_info=SourceInfo("phantom", phantom_size, 30.0), stem="snapshot_test")
    nir = tifffile.imread(paths["nir"])
    assert nir.dtype == np.uint16 and np.array_equal(nir, pair.nir)
    assert np.array_equal(cv2.imread(paths["wl"], cv2.IMREAD_UNCHANGED), pair.wl)
    assert np.array_equal(cv2.imread(paths["overlay"], cv2.IMREAD_UNCHANGED), result.composite)
    meta = json.loads(open(paths["metrics"]).read())
    assert meta["frame"] == pair.index and meta["metrics"]["rims"] == len(result.rims)
    assert meta["settings"]["segment"]["threshold"] == settings.segment.threshold
    assert len(meta["rims"]) == len(result.rims)
    assert not list((tmp_path / "snaps").glob("*.part"))


def test_snapshot_while_nir_lost_has_no_tiff(frames, phantom, tmp_path):
    from nirf_overlay.processing.pipeline import Pipeline
    from nirf_overlay.snapshot import write_snapshot

    pair = dataclasses.replace(frames[0], nir=None)
    result = Pipeline(Settings(), phantom.calibration()).process(pair)
    paths = write_snapshot(tmp_path, pair, result, composite=pair.wl)
    assert paths["nir"] is None
    assert json.loads(open(paths["metrics"]).read())["nir_lost"] is True


# -- recording hook ---------------------------------------------------------------------------
def test_recording_hook_writes_every_captured_pair(frames, controlled_source, make_engine,
                                                   tmp_path):
    from nirf_overlay.sources import SourceSpec, open_source

    src = controlled_source(live=True)
    eng = make_engine(src)
    take_next(eng)
    out = tmp_path / "session"
    eng.start_recording(out)
    wait_for(lambda: eng.recording_status()["state"] == "on", what="the recorder to start")
    wait_for(lambda: (eng.recording_status().get("frames_written") or 0) >= 8,
             what="frames written")
    eng.log_event("marker", label="test")
    eng.stop_recording(wait=True)
    st = eng.recording_status()
    assert st["state"] == "off" and not st["error"]
    assert eng.running, "the viewer keeps running"
    known = {f.nir.tobytes(): i for i, f in enumerate(frames)}
    with open_source(SourceSpec(session=str(out))) as session:
        assert session.info.frame_count >= 8
        got = [p for p in session]
    assert len(got) == session.info.frame_count
    # NIR bit-identical, in capture order (the source cycles through ``frames``)
    order = [known[p.nir.tobytes()] for p in got]
    assert all((b - a) % len(frames) in (1,) for a, b in zip(order, order[1:])), order
    events = (out / "events.jsonl").read_text()
    assert '"marker"' in events


def test_recording_that_cannot_start_is_reported(frames, controlled_source, make_engine,
                                                 tmp_path):
    src = controlled_source(live=True)
    eng = make_engine(src)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    eng.start_recording(blocker / "session")  # a folder inside a file cannot exist
    wait_for(lambda: eng.recording_status()["error"], what="the error")
    assert eng.recording_status()["state"] == "off"
    assert "\n" not in eng.recording_status()["error"]
    assert eng.running


# -- listeners ---------------------------------------------------------------------------------
class Collector(Listener):
    """Keeps what it is told, in order."""

    def __init__(self):
        self.states, self.pairs, self.results = [], [], []

    def on_state(self, state):
        self.states.append(state)

    def on_pair(self, pair):
        self.pairs.append(pair.index)

    def on_result(self, frame):
        self.results.append((frame.seq, frame.index))


def test_listener_sees_every_state_pair_and_result_in_order(frames, controlled_source,
                                                             make_engine):
    src = controlled_source(live=False)
    eng = make_engine(src, pace=True, start=False)  # 30 fps: the relay has time to keep up
    seen = Collector()
    relay = eng.add_listener(seen)
    eng.start()
    wait_for(lambda: len(seen.results) == len(frames) and eng.state == RunState.ENDED,
             what="every result and the end")
    eng.stop()
    n = len(frames)
    assert seen.results == [(k + 1, k) for k in range(n)]
    assert seen.pairs == list(range(n))
    # where the run is when it is added, then every change
    assert seen.states == [RunState.STARTING, RunState.RUNNING, RunState.ENDED, RunState.STOPPED]
    assert relay.dropped == 0
    assert eng.status().listener_dropped == 0


def test_listener_that_raises_is_reported_and_detached(frames, controlled_source, make_engine):
    class Broken(Collector):
        def on_result(self, frame):
            super().on_result(frame)
            if len(self.results) == 3:
                raise RuntimeError("disk full")

    src = controlled_source(live=False)
    eng = make_engine(src, pace=False, start=False)
    broken, fine = Broken(), Collector()
    eng.add_listener(broken, depth=4 * len(frames))
    eng.add_listener(fine, depth=4 * len(frames))
    eng.start()
    wait_for(lambda: eng.state == RunState.ENDED and len(fine.results) == len(frames),
             what="the end of the source")
    st = eng.status()
    assert st.processed == len(frames), "the run went on"
    assert "Broken" in st.error and "disk full" in st.error and "\n" not in st.error
    assert len(broken.results) == 3, "not called again once it failed"
    assert [seq for seq, _ in fine.results] == list(range(1, len(frames) + 1))


def test_blocked_listener_does_not_hold_capture_up(tmp_path):
    """A real phantom source, a listener that blocks on its first call: every
    pair is still captured and processed, and what the listener misses is counted."""
    from nirf_overlay.sources import SourceSpec, open_source

    n = 30
    release = threading.Event()

    class Blocked(Collector):
        def on_state(self, state):
            release.wait(60)
            super().on_state(state)

    source = open_source(SourceSpec(phantom=True, size=(160, 96), seed=4, options={"frames": n}))
    eng = Engine(source, Settings(), pace=False)
    blocked = Blocked()
    relay = eng.add_listener(blocked, depth=4)
    eng.start()
    try:
        wait_for(lambda: eng.state == RunState.ENDED, what="the end of the source")
        st = eng.status()
        assert st.captured == st.processed == n
        assert blocked.results == [], "still blocked"
        release.set()
        wait_for(lambda: len(blocked.pairs) + len(blocked.results) + relay.dropped == 2 * n,
                 what="the relay to hand over what it held")
        assert relay.dropped == 2 * n - 4  # it held its depth; the rest passed it by
        assert eng.status().listener_dropped == relay.dropped
    finally:
        release.set()
        eng.stop()


def test_metrics_sink_is_a_listener_of_the_engine_too(frames, controlled_source, phantom,
                                                     tmp_path):
    """The sink ``process`` writes through gives the same rows attached to the viewer's engine."""
    from nirf_overlay.engine import run_frames
    from nirf_overlay.export import MetricsSink
    from nirf_overlay.processing.pipeline import Pipeline

    (tmp_path / "engine").mkdir()
    (tmp_path / "loop").mkdir()
    with MetricsSink(str(tmp_path / "loop")) as sink:
        run_frames(frames, Pipeline(Settings(), phantom.calibration()), [sink])
    eng = Engine(controlled_source(live=False), Settings(), phantom.calibration(),
                 pace=False, pipeline_factory=Pipeline)  # every frame analysed, as process does
    with MetricsSink(str(tmp_path / "engine")) as sink:
        eng.add_listener(sink, depth=4 * len(frames))
        eng.start()
        wait_for(lambda: eng.state == RunState.ENDED, what="the end of the source")
        eng.stop()  # delivers what the relay holds
    for table in ("metrics.csv", "rims.csv"):
        want = (tmp_path / "loop" / table).read_text()
        assert (tmp_path / "engine" / table).read_text() == want
    assert want.count("\n") > len(frames) / 2
