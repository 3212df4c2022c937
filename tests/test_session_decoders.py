"""Session decoders for intra-only codecs: one in-process codec context per stream (PyAV)."""

import threading

import numpy as np
import pytest

from nirf_overlay.engine import Engine
from nirf_overlay.errors import SourceError
from nirf_overlay.recording import SessionSource
from nirf_overlay.recording import format as fmt
from nirf_overlay.recording.compact import compact_segment
import av

from nirf_overlay.recording.packet_decoder import index_file


@pytest.fixture(scope="module")
def session(tmp_path_factory, record_phantom_session):
    """25 frames at 10 fps in segments of 10: three segments, the default codecs."""
    out = tmp_path_factory.mktemp("fed") / "s"
    pairs = record_phantom_session(out, frames=25, fps=10.0, segment_seconds=1.0,
                                   calibrated=False)
    return out, pairs


def _same(pair, truth):
    return (pair.index == truth.index and np.array_equal(pair.nir, truth.nir)
            and np.array_equal(pair.wl, truth.wl))


def test_any_order_of_frames_comes_from_one_decoder_per_stream(session):
    path, pairs = session
    got = []
    with SessionSource(path) as src:
        got += [src.read() for _ in range(12)]  # 0..11: across a segment's end
        src.set_stride(3)
        got += [src.read() for _ in range(4)]  # 12 15 18 21
        src.seek(4)  # back, mid-segment
        got += [src.read() for _ in range(2)]  # 4 7
        src.set_stride(1)
        src.seek(23)
        got += [src.read() for _ in range(2)]  # 23 24
        src.seek(9)
        got.append(src.read())
        opens = src.decoder_opens
    want = list(range(12)) + [12, 15, 18, 21, 4, 7, 23, 24, 9]
    assert [p.index for p in got] == want
    assert all(_same(p, pairs[p.index]) for p in got)
    # one NIR and one WL decoder for everything: segments, strides, seeks, the end
    assert opens == 2, opens


def test_a_segment_in_another_codec_gets_its_own_decoders(tmp_path, record_phantom_session):
    path = tmp_path / "s"
    pairs = record_phantom_session(path, frames=25, fps=10.0, segment_seconds=1.0,
                                   calibrated=False, compact=False)
    compact_segment(str(path), "nir_000001.mkv")  # FFV1 in the middle, FFVHuff around it
    assert fmt.is_ffv1(str(path / "nir_000001.mkv"))
    assert not fmt.is_ffv1(str(path / "nir_000002.mkv"))
    with SessionSource(path) as src:
        got = list(iter(src.read, None))
        opens = src.decoder_opens
        src.seek(13)  # into the FFV1 segment: its own decoders again
        got += [src.read(), src.read()]
        src.seek(17)  # a seek inside it: the same ones
        got.append(src.read())
        opens_after = src.decoder_opens
    assert [p.index for p in got] == list(range(25)) + [13, 14, 17]
    assert all(_same(p, pairs[p.index]) for p in got)
    assert opens == 6  # FFVHuff, FFV1, FFVHuff again: a pair each
    assert opens_after == 8


def test_the_packet_index_lists_every_frame_and_stops_at_a_cut(session, tmp_path):
    path, _ = session
    idx = index_file(str(path / "wl_000000.mkv"))
    assert len(idx.pts) == 10
    with av.open(str(path / "wl_000000.mkv")) as c:
        pos = [p.pos for p in c.demux(c.streams.video[0]) if p.size]
    cut = tmp_path / "wl_cut.mkv"
    data = (path / "wl_000000.mkv").read_bytes()
    cut.write_bytes(data[:pos[6] + 100])  # inside frame 6
    assert len(index_file(str(cut)).pts) == 6
    junk = tmp_path / "junk.mkv"
    junk.write_bytes(b"not a matroska file")
    with pytest.raises(SourceError, match="junk.mkv: cannot index its frames") as e:
        index_file(str(junk))
    assert "\n" not in str(e.value)


def test_catching_up_at_2x_never_restarts_the_decoders(tmp_path, record_phantom_session):
    from test_replay_speed import SlowerMachine

    path = tmp_path / "s"
    record_phantom_session(path, frames=120, fps=30.0, calibrated=False)  # 4 segments
    pipe = SlowerMachine(None, None)
    with SessionSource(path) as warm:
        pipe.process(warm.read())
    pipe.reset()
    pipe.extra_s = 0.1  # behind at 2x even at stride 4 (10 shown x 4 < 60): the read-ahead jumps
    src = SessionSource(path)
    engine = Engine(src, pipeline=pipe, pace=True, keep_clock=True)
    shown, done = [], threading.Event()

    class Shown:
        def on_state(self, state):
            if state.name == "ENDED":
                done.set()

        def on_pair(self, pair):
            pass

        def on_result(self, frame):
            shown.append(frame.pair.index)

    engine.set_speed(2.0)
    engine.add_listener(Shown())
    with engine:
        assert done.wait(30), shown
        skipped = engine.skipped
        opens = src.decoder_opens
    gaps = [b - a for a, b in zip(shown, shown[1:])]
    assert skipped > 0 and max(gaps) > 4, gaps  # it did catch up: skips and jumps
    assert opens == 2, opens  # across 4 segments, the jumps and the new strides


def test_the_two_streams_decode_side_by_side_and_closing_ends_the_wl_thread(session):
    path, pairs = session

    def wl_threads():
        return [t for t in threading.enumerate() if t.name.startswith("nirf-wl-decode")]

    before = len(wl_threads())
    with SessionSource(path) as src:
        got = [src.read() for _ in range(12)]
        assert len(wl_threads()) == before + 1  # WL on its own thread, NIR on the reader's
    assert all(_same(p, t) for p, t in zip(got, pairs))
    assert len(wl_threads()) == before  # no thread left behind per session opened
