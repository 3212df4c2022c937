"""Fast replay: from 2x on a session hands out every k-th frame, decoding only those."""

import threading

import numpy as np
import pytest

from nirf_overlay.engine import Engine
from nirf_overlay.engine.replay import replay_stride
from nirf_overlay.recording import SessionSource


@pytest.fixture(scope="module", params=["ffvhuff", "x264rgb"])
def session(request, tmp_path_factory, record_phantom_session):
    """23 frames in segments of 10 (ffvhuff: intra-only WL; x264rgb: WL with inter frames)."""
    out = tmp_path_factory.mktemp("fast") / request.param
    pairs = record_phantom_session(out, frames=23, fps=10.0, segment_seconds=1.0,
                                   wl_codec=request.param, calibrated=False)
    return out, pairs


def _read_all(src):
    got = []
    while True:
        p = src.read()
        if p is None:
            return got
        got.append(p)


@pytest.mark.parametrize("start,stride", [(0, 2), (3, 4), (9, 3)])
def test_a_strided_session_hands_out_exactly_every_kth_frame_across_segments(session, start, stride):
    path, pairs = session
    with SessionSource(path) as src:
        assert src.set_stride(stride)
        src.seek(start)
        got = _read_all(src)
    want = list(range(start, len(pairs), stride))
    assert [p.index for p in got] == want
    for p in got:
        assert np.array_equal(p.nir, pairs[p.index].nir), p.index
        # WL is lossless in both codecs
        assert np.array_equal(p.wl, pairs[p.index].wl), p.index
        assert p.wl_time == pytest.approx(p.index / 10.0, abs=2e-3)


def test_stride_changes_between_reads_keep_the_position(session):
    path, pairs = session
    with SessionSource(path) as src:
        first = [src.read().index for _ in range(3)]  # 0 1 2
        src.set_stride(4)
        fast = [src.read().index for _ in range(3)]  # 3 7 11
        src.set_stride(1)
        slow = [src.read().index for _ in range(2)]  # 15 16
    assert first + fast + slow == [0, 1, 2, 3, 7, 11, 15, 16]


def test_replay_stride_rule():
    assert [replay_stride(s) for s in (0.25, 0.5, 1.0, 1.5, 1.99, 2.0, 3.0, 4.0)] == [1, 1, 1, 1, 1, 2, 3, 4]


def test_engine_at_2x_shows_every_other_frame_at_the_recordings_rate(session):
    path, pairs = session
    src = SessionSource(path)
    engine = Engine(src, pace=True)
    shown, done = [], threading.Event()

    class Count:
        def on_state(self, state):
            pass

        def on_pair(self, pair):
            pass

        def on_result(self, frame):
            shown.append(frame.pair.index)
            if frame.pair.index >= len(pairs) - 2:
                done.set()

    engine.set_speed(2.0)
    engine.add_listener(Count())
    with engine:
        assert done.wait(30)
    assert shown[:5] == [0, 2, 4, 6, 8]
    assert all(b - a == 2 for a, b in zip(shown, shown[1:]))
