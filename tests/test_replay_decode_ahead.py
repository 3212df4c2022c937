"""Replay that cannot decode every frame decodes only frames it shows (ReadAhead + Pacer.skip_to)."""

import threading
import time

import numpy as np
import pytest

from nirf_overlay.engine import Engine
from nirf_overlay.engine.replay import Pacer
from nirf_overlay.frame import FramePair
from nirf_overlay.processing.pipeline import Pipeline
from nirf_overlay.recording import SessionSource

FPS = 30.0


@pytest.fixture(scope="module")
def session(tmp_path_factory, record_phantom_session):
    """6 s of a 30 fps recording, default (intra-only) codecs."""
    out = tmp_path_factory.mktemp("ahead") / "s"
    record_phantom_session(out, frames=180, fps=FPS, calibrated=False)
    return out


def _pair(index):
    wl = np.zeros((4, 4, 3), np.uint8)
    return FramePair(wl=wl, nir=None, index=index, wl_time=index / FPS)


def test_the_pacer_names_the_frame_due_when_a_read_would_finish():
    pacer = Pacer(FPS, keep_clock=True)
    stop = threading.Event()
    assert pacer.skip_to(time.monotonic() + 1.0, 11) is None  # no schedule yet
    pacer.wait(_pair(10), stop)  # the first pair: the schedule starts at it, now
    t = time.monotonic()
    # a read finishing within a period of the next frame's time: that frame is read
    assert pacer.skip_to(t + 0.5 / FPS, 11) is None
    # finishing 3.5 periods on: frame 14 is the first due then or after
    assert pacer.skip_to(t + 3.5 / FPS, 11) == 14
    # the source went back behind the newest pair released (a loop's start): never skip
    assert pacer.skip_to(t + 3.5 / FPS, 2) is None
    pacer.set_speed(2.0)  # two recording frames a period
    assert pacer.skip_to(t + 3.25 / FPS, 11) == 17
    pacer.restart()  # a seek or a pause: nothing is due on the old schedule
    assert pacer.skip_to(t + 3.5 / FPS, 11) is None


class SlowerDecoding(SessionSource):
    """The real session on a machine where decoding a pair takes ``extra_s`` more
    (more than a frame period: 1x cannot decode every frame)."""

    extra_s = 0.0

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.read_indices = []

    def read(self, timeout=None):
        time.sleep(self.extra_s)
        pair = super().read(timeout)
        if pair is not None:
            self.read_indices.append(pair.index)
        return pair


def _replay(path, extra_s, seconds=3.0):
    pipe = Pipeline(None, None)
    with SessionSource(path) as warm:
        pipe.process(warm.read())  # the kernels compiled before the clock starts
    pipe.reset()
    src = SlowerDecoding(path)
    src.extra_s = extra_s
    engine = Engine(src, pipeline=pipe, pace=True, keep_clock=True)
    shown = []

    class Shown:
        def on_state(self, state):
            pass

        def on_pair(self, pair):
            pass

        def on_result(self, frame):
            shown.append((frame.processed, frame.pair.index))

    engine.add_listener(Shown())
    with engine:
        time.sleep(seconds)
        skipped = engine.skipped
    return shown, skipped, src.read_indices


def test_at_1x_with_slow_decoding_replay_decodes_only_frames_it_shows(session):
    # 45 ms a pair: at most ~22 pairs a second; every frame (30) cannot be decoded
    shown, skipped, reads = _replay(session, 0.045)
    shown = shown[3:]
    t = np.array([s[0] for s in shown]) - shown[0][0]
    idx = np.array([s[1] for s in shown], float)
    slope = float(np.polyfit(t, idx - idx[0], 1)[0])
    assert slope == pytest.approx(FPS, rel=0.12), (slope, idx)  # the position right
    assert np.all(np.diff(idx) > 0), idx
    fps_shown = (len(shown) - 1) / (t[-1] - t[0])
    # as many frames as it can decode, not every other one (15 fps: the catch-up's
    # jump to every other frame, what a read-ahead reading in order came to)
    assert fps_shown > 17.0, (fps_shown, idx)
    # few pairs decoded and then left out for coming too late
    in_span = [i for i in reads if idx[0] <= i <= idx[-1]]
    assert len(in_span) - len(shown) <= 0.1 * len(shown), (len(in_span), len(shown))
    assert skipped > 0


def test_at_1x_when_decoding_keeps_up_every_frame_is_read(session):
    shown, skipped, reads = _replay(session, 0.0, seconds=2.0)
    # decoding a 320x180 pair takes a few ms: nothing to skip ahead of, reads in order
    # (the machine being shared may still leave a late frame out in the worker)
    gaps = np.diff(reads[:40])
    assert np.count_nonzero(gaps != 1) <= 2, reads[:40]
