"""Recording and replay: lossless round trip, exact seek, crash safety, full disk, bad sessions.

Everything runs through the real encoders (FFmpeg subprocesses) and the real
reader; frames are small so that the whole file stays within a minute or so.
"""

from __future__ import annotations

import csv
import errno
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nirf_overlay.errors import NirfError, RecordingError, SourceError
from nirf_overlay.frame import FramePair, SourceInfo
from nirf_overlay.phantom import Phantom, PhantomParams
from nirf_overlay.recording import (
    Marker, Recorder, RecorderStatus, SessionSource, compact_session, read_session,
)
from nirf_overlay.recording import format as fmt
from nirf_overlay.recording.encoders import EncoderError, PipeEncoder
from nirf_overlay.settings import Settings
from nirf_overlay.sources import SourceSpec, open_source

ROOT = Path(__file__).resolve().parents[1]
W, H, FPS = 96, 64, 30.0


def synthetic_pairs(n, *, seed=0, size=(W, H), nir_bits=12, lost=(), smooth=False):
    """Seeded pairs: noisy WL and NIR counts covering the full ``nir_bits`` range."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    pairs = []
    for i in range(n):
        if smooth:  # camera-like content for the lossy codec's tolerance
            base = np.stack([80 + 60 * np.sin((xx + 2 * i) / 9.0), 120 + 50 * np.cos(yy / 7.0),
                             100 + 40 * np.sin((xx + yy) / 11.0)], axis=-1)
            wl = np.clip(base + rng.normal(0, 2, base.shape), 0, 255).astype(np.uint8)
        else:
            wl = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        nir = rng.integers(0, 1 << nir_bits, (h, w), dtype=np.uint16)
        nir[0, 0] = (1 << nir_bits) - 1  # saturated pixel survives
        pairs.append(FramePair(
            wl=wl, nir=None if i in lost else nir, nir_bits=nir_bits, index=100 + i,
            wl_time=1000.0 + i / FPS, nir_time=1000.0 + i / FPS + 0.002, exposure_ms=10.0 + i,
            gain=1.5, meta={"dropped_before": i % 3, "unpaired": i == 7},
        ))
    return pairs


def info_for(size=(W, H), nir_bits=12, live=False):
    return SourceInfo(description="synthetic test pairs", size=size, fps=FPS, nir_bits=nir_bits,
                      live=live)


def record(out, pairs, *, info=None, **kwargs):
    """Record ``pairs`` (waiting for room, so none is refused); return (recorder, status)."""
    kwargs.setdefault("min_free_bytes", 0)
    rec = Recorder(out, info or info_for(nir_bits=pairs[0].nir_bits, size=pairs[0].size),
                   **kwargs)
    for p in pairs:
        assert rec.submit(p, block=True)
    return rec, rec.stop(wait_compaction=True)


# -- lossless round trip ------------------------------------------------------------------
@pytest.mark.parametrize("wl_codec,compact", [("utvideo", False), ("ffvhuff", False),
                                               ("ffvhuff", True), ("x264rgb", False),
                                               ("ffv1", False)])
@pytest.mark.parametrize("nir_bits", [12, 16])
def test_roundtrip_is_bit_identical(tmp_path, wl_codec, compact, nir_bits):
    pairs = synthetic_pairs(70, seed=nir_bits, nir_bits=nir_bits, lost={5})
    rec, st = record(tmp_path / "s", pairs, wl_codec=wl_codec, compact=compact)
    assert isinstance(st, RecorderStatus) and not st.recording and st.stop_reason == "stopped"
    assert st.error == "" and st.frames_safe == 70 and st.frames_not_written == 0
    assert st.segments == 3 and st.segments_compacted == (3 if compact else 0)

    with SessionSource(tmp_path / "s") as src:
        assert src.info.seekable and src.info.frame_count == 70
        assert src.info.size == (W, H) and src.info.nir_bits == nir_bits
        assert not src.interrupted and src.stats.message == ""
        got = list(src)
    assert len(got) == 70
    for i, (a, b) in enumerate(zip(pairs, got)):
        assert b.index == i
        assert b.wl.dtype == np.uint8 and b.wl.shape == (H, W, 3)
        assert np.array_equal(a.wl, b.wl), f"WL frame {i}"
        if a.nir is None:
            assert b.nir is None
        else:
            assert b.nir.dtype == np.uint16 and b.nir.shape == (H, W)
            assert np.array_equal(a.nir, b.nir), f"NIR frame {i}"
        # times count from frame 0; the source's clock values are kept in meta
        assert b.wl_time == pytest.approx(i / FPS) and b.nir_time == pytest.approx(i / FPS + 0.002)
        assert (b.meta["recorded_wl_time"], b.meta["recorded_nir_time"]) == (a.wl_time, a.nir_time)
        assert (b.exposure_ms, b.gain) == (a.exposure_ms, a.gain)
        assert b.meta["dropped_before"] == a.meta["dropped_before"]
        assert b.meta["unpaired"] == a.meta["unpaired"]
        assert b.meta["source_index"] == a.index
    # compacted sessions hold FFV1 NIR only; others FFVHuff only
    for seg in read_session(tmp_path / "s").segments:
        assert fmt.is_ffv1(str(tmp_path / "s" / seg.nir_file)) == compact
    assert not list((tmp_path / "s").glob("*.part"))


def test_ut_video_wl_is_recorded_bit_exact_and_refused_at_odd_sizes(tmp_path):
    """Ut Video (the cheapest WL to replay, issue 16): bit-exact, said in session.json
    and segments.csv; FFmpeg's encoder breaks on noisy odd-sized frames, so those are
    refused in one line that names the fix."""
    pairs = synthetic_pairs(12, seed=4)
    record(tmp_path / "s", pairs, wl_codec="utvideo")
    meta = json.loads((tmp_path / "s" / "session.json").read_text())
    assert meta["wl_codec"] == "utvideo" and meta["wl_lossless"] is True
    probe = subprocess.run(
        [fmt.ffmpeg_exe(), "-hide_banner", "-i", str(tmp_path / "s" / "wl_000000.mkv")],
        capture_output=True, text=True).stderr
    assert "utvideo" in probe and "gbrp" in probe
    assert {seg.wl_codec for seg in read_session(tmp_path / "s").segments} == {"utvideo"}
    with SessionSource(tmp_path / "s") as src:
        got = list(src)
    assert len(got) == 12
    for a, b in zip(pairs, got):
        assert np.array_equal(a.wl, b.wl) and np.array_equal(a.nir, b.nir)
    odd = synthetic_pairs(2, seed=2, size=(161, 121))
    with pytest.raises(RecordingError, match=r"161x121.*use --wl-codec ffvhuff"):
        record(tmp_path / "odd", odd, wl_codec="utvideo")


@pytest.mark.parametrize("size", [(161, 121), (17, 16)])
def test_odd_frame_sizes_round_trip(tmp_path, size):
    pairs = synthetic_pairs(4, seed=2, size=size)
    record(tmp_path / "s", pairs)
    with SessionSource(tmp_path / "s") as src:
        got = list(src)
    assert len(got) == 4
    for a, b in zip(pairs, got):
        assert b.wl.shape == (size[1], size[0], 3) and b.nir.shape == (size[1], size[0])
        assert np.array_equal(a.wl, b.wl) and np.array_equal(a.nir, b.nir)


def test_near_lossless_wl_within_tolerance_and_nir_exact(tmp_path):
    pairs = synthetic_pairs(12, seed=3, smooth=True)
    record(tmp_path / "s", pairs, wl_codec="x264")
    meta = json.loads((tmp_path / "s" / "session.json").read_text())
    assert meta["wl_lossless"] is False
    with SessionSource(tmp_path / "s") as src:
        for a, b in zip(pairs, src):
            assert np.array_equal(a.nir, b.nir)
            err = np.abs(a.wl.astype(int) - b.wl.astype(int))
            mse = float((err ** 2).mean())
            psnr = 10 * np.log10(255 ** 2 / max(mse, 1e-9))
            assert psnr > 40 and err.max() <= 16, (psnr, err.max())


def test_phantom_session_reads_back_bit_identical(tmp_path, record_phantom_session):
    settings = Settings()
    settings.set("segment.threshold", 2.5)
    pairs = record_phantom_session(tmp_path / "s", seed=2, size=(128, 96), frames=40,
                                   settings=settings, markers={12: "rim appears"})
    cal = Phantom(PhantomParams(seed=2, size=(128, 96))).calibration()
    with SessionSource(tmp_path / "s") as replay:
        assert replay.info.nir_bits == pairs[0].nir_bits == 12
        n = 0
        for a, b in zip(pairs, replay):
            assert np.array_equal(a.nir, b.nir) and np.array_equal(a.wl, b.wl)
            assert b.exposure_ms == a.exposure_ms and b.gain == a.gain
            n += 1
        assert n == 40
        # the FrameSource interface gives what came with the recording
        assert replay.own_settings().segment.threshold == 2.5
        assert replay.own_settings() is not replay.own_settings()  # a copy each time
        rc = replay.own_calibration()
        assert rc.mm_per_px == pytest.approx(cal.mm_per_px)
        assert np.array_equal(np.round(cal.dark), rc.dark)
        assert np.allclose(cal.flat, rc.flat, rtol=1e-5)
        assert replay.markers == [Marker(12, "rim appears", replay.markers[0].t,
                                         replay.markers[0].time)]
        index, label, *_ = replay.markers[0]  # reads like an (index, label) marker
        assert (index, label) == (12, "rim appears")


# -- seeking --------------------------------------------------------------------------------
def test_seek_returns_frame_n_across_segments(tmp_path):
    pairs = synthetic_pairs(75, seed=11)
    record(tmp_path / "s", pairs, segment_seconds=0.5)  # 15-frame segments
    rng = np.random.default_rng(5)
    targets = [0, 14, 15, 16, 29, 30, 74, 44, 45, 1] + list(rng.integers(0, 75, 12))
    with SessionSource(tmp_path / "s") as src:
        for n in targets:
            src.seek(int(n))
            assert src.position == n
            got = src.read()
            assert got.index == n
            assert np.array_equal(got.wl, pairs[n].wl) and np.array_equal(got.nir, pairs[n].nir)
            if n + 1 < 75:  # reading on continues with the next frame, across a boundary too
                nxt = src.read()
                assert nxt.index == n + 1 and np.array_equal(nxt.nir, pairs[n + 1].nir)
        with pytest.raises(SourceError, match="outside 0..74"):
            src.seek(75)
        assert src.index_at(0.0) == 0 and src.index_at(1.0) == 30 and src.index_at(99) == 74


def test_loop_and_realtime_pacing(tmp_path):
    pairs = synthetic_pairs(8, seed=1)
    record(tmp_path / "s", pairs)
    with SessionSource(tmp_path / "s", realtime=True, loop=True) as src:
        src.speed = 4.0
        got = [src.read() for _ in range(12)]
    assert [p.index for p in got] == list(range(8)) + [0, 1, 2, 3]
    spec = SourceSpec(session=str(tmp_path / "s"))
    with open_source(spec) as src:
        assert isinstance(src, SessionSource) and len(list(src)) == 8
        assert src.read() is None and src.stats.status == "ended"


# -- events, markers, settings ------------------------------------------------------------
def test_markers_and_events_round_trip(tmp_path):
    pairs = synthetic_pairs(40, seed=4)
    rec = Recorder(tmp_path / "s", info_for(), min_free_bytes=0, label="case 17")
    for i, p in enumerate(pairs):
        rec.submit(p, block=True)
        if i == 12:
            rec.log_event("marker", label="rim appears")
            rec.log_event("setting", name="segment.threshold", value=np.float32(2.0))
        if i == 33:
            rec.log_event("snapshot", path="/tmp/x.png")
    rec.log_event("marker", frame=3, label="explicit frame")
    rec.log_event("marker", source_index=100 + 20, label="by source index")  # pairs[20]
    rec.stop()
    with SessionSource(tmp_path / "s") as src:
        kinds = [e["kind"] for e in src.events]
        assert kinds[0] == "start" and kinds[-1] == "stop"
        assert {"marker", "setting", "snapshot"} <= set(kinds)
        assert [(m.frame, m.label) for m in src.markers] == [
            (12, "rim appears"), (3, "explicit frame"), (20, "by source index")]
        setting = next(e for e in src.events if e["kind"] == "setting")
        assert setting["value"] == 2.0 and setting["name"] == "segment.threshold"
        assert src.info.extra["label"] == "case 17"
        assert src.own_calibration() is None
        assert src.own_settings().to_dict() == Settings().to_dict()
    meta = json.loads((tmp_path / "s" / "session.json").read_text())
    assert meta["schema_version"] == fmt.SCHEMA_VERSION and meta["label"] == "case 17"
    assert meta["interrupted"] is False and meta["stop_reason"] == "stopped"
    assert meta["frames"] == 40 and meta["size"] == [W, H] and meta["nir_bits"] == 12


# -- never blocking, never silent ---------------------------------------------------------
def test_full_queue_refuses_and_counts_never_blocks(tmp_path):
    pairs = synthetic_pairs(60, seed=6, size=(160, 120))
    pair_bytes = pairs[0].wl.nbytes + pairs[0].nir.nbytes
    rec = Recorder(tmp_path / "s", info_for(size=(160, 120)), min_free_bytes=0,
                   max_queue_bytes=2 * pair_bytes)
    accepted = [rec.submit(p) for p in pairs]  # as fast as Python goes, no waiting
    st = rec.stop()
    refused = accepted.count(False)
    assert refused > 0, "the encoders kept up with a 2-frame queue; test proves nothing"
    assert st.frames_not_written == refused and st.frames_safe == accepted.count(True)
    assert "cannot keep up" in st.warning
    with open(tmp_path / "s" / "frames.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == accepted.count(True)
    trailing = len(accepted) - 1 - max(i for i, a in enumerate(accepted) if a)
    assert sum(int(r["not_written_before"]) for r in rows) == refused - trailing
    # the frames that were written are the right ones
    kept = [p for p, a in zip(pairs, accepted) if a]
    with SessionSource(tmp_path / "s") as src:
        for a, b in zip(kept, src):
            assert np.array_equal(a.nir, b.nir)
    assert rec.submit(pairs[0]) is False  # after stop: refused, not counted
    assert rec.status().frames_not_written == refused


def test_refuses_nonempty_dir_and_low_free_space(tmp_path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("x")
    with pytest.raises(RecordingError, match="not empty"):
        Recorder(tmp_path / "used", info_for(), min_free_bytes=0)
    with pytest.raises(RecordingError, match="not a directory"):
        Recorder(tmp_path / "used" / "x", info_for(), min_free_bytes=0)
    with pytest.raises(RecordingError, match="MB free; recording needs at least"):
        Recorder(tmp_path / "new", info_for(), min_free_bytes=1 << 62)


def test_free_space_watermark_stops_cleanly(tmp_path):
    rec = Recorder(tmp_path / "s", info_for(), min_free_bytes=0, stop_free_bytes=1 << 62)
    for p in synthetic_pairs(5):
        rec.submit(p, block=True)
    st = rec.stop()
    assert "disk nearly full" in st.error and not st.recording
    meta = json.loads((tmp_path / "s" / "session.json").read_text())
    assert meta["interrupted"] is False and "disk nearly full" in meta["stop_reason"]
    with SessionSource(tmp_path / "s") as src:
        assert src.info.frame_count == 0 and "stopped early" in src.stats.message


def test_status_while_recording(tmp_path):
    rec = Recorder(tmp_path / "s", info_for(), min_free_bytes=0, max_queue_bytes=1 << 30)
    for p in synthetic_pairs(10, seed=7):
        assert rec.submit(p)
    st = rec.status()
    assert isinstance(st, RecorderStatus) and st.recording and st.error == ""
    assert st.frames_submitted == 10 and st.queue_capacity_bytes == 1 << 30
    assert st.queue_frames + st.frames_written <= 10
    final = rec.stop()
    assert not final.recording and final.frames_safe == 10 and final.queue_frames == 0
    assert rec.status() == final  # nothing changes after the stop


def test_a_failing_encoder_reports_ffmpeg_own_words(tmp_path):
    """A real FFmpeg that refuses its codec: the pipe breaks or the exit code says so,
    and the message is FFmpeg's last line, not a traceback."""
    out = tmp_path / "x.mkv"
    cmd = [fmt.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo",
           "-pix_fmt", "gray16le", "-s", f"{W}x{H}", "-i", "pipe:0", "-c:v", "no_such_codec",
           str(out)]
    enc = PipeEncoder(cmd)
    frame = np.zeros((H, W), np.uint16)
    for _ in range(50):  # True until FFmpeg has given up; then False, never an exception
        if not enc.write(frame):
            break
    enc.close_input()
    assert enc.wait(30) != 0
    assert "Encoder not found" in enc.last_error()
    assert enc.last_error() == enc.last_error()  # read once, kept
    with pytest.raises(EncoderError, match="cannot start"):
        PipeEncoder([str(tmp_path / "no-such-ffmpeg")])


# -- full disk ----------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs when mounting is allowed (root), else None (errors are injected)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)],
                        capture_output=True).returncode == 0
    yield mnt if ok else None
    if ok:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_full_disk_stops_cleanly_and_keeps_earlier_frames(tmp_path, small_disk, monkeypatch):
    size = (160, 120)
    pairs = synthetic_pairs(200, seed=8, size=size)  # ~58 KB of noise per pair: fills 3 MB
    if small_disk is not None:
        out = small_disk / "s"
    else:  # no tmpfs: the frame table starts failing with ENOSPC after 70 frames
        out = tmp_path / "s"
        real_open = open
        import nirf_overlay.recording.session_writer as writer_mod

        class FullAfter:
            def __init__(self, f, n):
                self._f, self._n = f, n

            def write(self, s):
                self._n -= 1
                if self._n < 0:
                    raise OSError(errno.ENOSPC, "No space left on device")
                return self._f.write(s)

            def __getattr__(self, k):
                return getattr(self._f, k)

        def fake_open(path, mode="r", *a, **k):
            f = real_open(path, mode, *a, **k)
            return FullAfter(f, 71) if str(path).endswith("frames.csv") and "w" in mode else f

        monkeypatch.setattr(writer_mod, "open", fake_open, raising=False)
    pair_bytes = pairs[0].wl.nbytes + pairs[0].nir.nbytes
    rec = Recorder(out, info_for(size=size), min_free_bytes=0, stop_free_bytes=0,
                   segment_seconds=0.5, max_queue_bytes=8 * pair_bytes)
    results = [rec.submit(p, block=True, timeout=10) for p in pairs]  # never raises
    st = rec.stop()
    assert not st.recording
    assert st.error.startswith("disk full"), st.error
    assert False in results  # once stopped, pairs are refused
    assert 15 <= st.frames_safe < len(pairs)  # at least the first 0.5 s segment survived
    meta = json.loads((out / "session.json").read_text())
    assert meta["interrupted"] is False and meta["stop_reason"].startswith("disk full")
    assert not list(out.glob("*.part"))  # the unfinished segment was removed
    with SessionSource(out) as src:
        assert src.info.frame_count == st.frames_safe
        assert "disk full" in src.stats.message
        n = 0
        for a, b in zip(pairs, src):
            assert np.array_equal(a.nir, b.nir) and np.array_equal(a.wl, b.wl)
            n += 1
        assert n == st.frames_safe


# -- crash safety: kill -9 a recording process -----------------------------------------------
def test_sigkill_leaves_a_readable_interrupted_session(tmp_path):
    out = tmp_path / "s"
    cmd = [sys.executable, "-m", "nirf_overlay", "record", "--phantom", "--realtime",
           "--size", "128x96", "--fps", "30", "--out", str(out), "--seconds", "120",
           "--segment-seconds", "0.5", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        listed = 0
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.25)
            try:
                listed = len(read_session(out).segments)
            except RecordingError:
                continue
            if listed >= 5:
                break
        assert listed >= 5, f"recorder did not get going: {proc.stderr.read1().decode()}"
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(1.0)  # orphaned encoders finish their files; that must not matter
    rows = sum(1 for _ in open(out / "frames.csv")) - 1  # frames flushed before the kill
    seg_frames = json.loads((out / "session.json").read_text())["segment_frames"]
    with SessionSource(out) as src:
        assert src.interrupted
        assert "interrupted" in src.stats.message
        count = src.info.frame_count
        frames = list(src)
    assert len(frames) == count > 0
    assert all(f.nir is not None and f.nir.max() > 0 for f in frames)
    # all but the last ~1 s: at most the unfinished segment and one being closed
    assert rows - count <= 2 * seg_frames, (rows, count, seg_frames)
    # opening through the source registry says the same
    with open_source(SourceSpec(session=str(out))) as src:
        assert src.interrupted and src.info.frame_count == count


# -- bad sessions ---------------------------------------------------------------------------
@pytest.fixture
def good_session(tmp_path):
    record(tmp_path / "s", synthetic_pairs(35, seed=9))
    return tmp_path / "s"


def _open_error(path) -> str:
    with pytest.raises(NirfError) as e:
        open_source(SourceSpec(session=str(path)))
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_corrupt_sessions_are_refused_in_one_line(good_session):
    s = good_session
    meta = (s / "session.json").read_text()

    (s / "session.json").write_text("{not json")
    assert "session.json" in _open_error(s) and "not valid JSON" in _open_error(s)
    (s / "session.json").write_text(meta.replace('"schema_version": 1', '"schema_version": 99'))
    assert "newer" in _open_error(s)
    (s / "session.json").write_text(meta)

    seg = (s / "segments.csv").read_text()
    # a damaged table degrades the session (read up to the damage, said), never fails it
    (s / "segments.csv").write_text(seg.replace("nir_000001.mkv", "nir_000009.mkv"))
    damaged = read_session(s)
    assert any("nir_000009.mkv: missing" in w for w in damaged.warnings)
    # segment 1 is found again from frames.csv's segment column and its own files
    assert [x.number for x in damaged.segments] == [0, 1]
    assert any("1 segment(s) after the damage found" in w for w in damaged.warnings)
    wl1 = (s / "wl_000001.mkv").read_bytes()
    (s / "wl_000001.mkv").unlink()  # ... unless they are gone too
    damaged = read_session(s)
    assert damaged.segments and all(x.number < 1 for x in damaged.segments)
    (s / "wl_000001.mkv").write_bytes(wl1)
    (s / "segments.csv").write_text(seg)

    frames = (s / "frames.csv").read_text().splitlines(keepends=True)
    (s / "frames.csv").write_text("".join(frames[:10]))
    damaged = read_session(s)
    # the 9 rows before the cut, the frames after it timed by the frame rate
    assert damaged.frame_count == 35 and any("frames.csv" in w for w in damaged.warnings)
    times = [float(r["wl_time"]) for r in damaged.frames]
    assert all(b > a for a, b in zip(times, times[1:]))
    (s / "frames.csv").write_text("".join(frames))

    # a damaged segment file: refused when its frames are read, naming the file
    nir1 = s / "nir_000001.mkv"
    data = nir1.read_bytes()
    nir1.write_bytes(data[: len(data) // 3])
    with SessionSource(s) as src:
        src.seek(31)
        with pytest.raises(SourceError, match="nir_000001.mkv") as e:
            for _ in range(5):
                src.read()
        assert "\n" not in str(e.value)


def test_compact_session_is_resumable(tmp_path):
    pairs = synthetic_pairs(40, seed=12)
    rec = Recorder(tmp_path / "s", info_for(), min_free_bytes=0, compact=False)
    for p in pairs:
        rec.submit(p, block=True)
    rec.stop()
    names = [seg.nir_file for seg in read_session(tmp_path / "s").segments]
    assert not any(fmt.is_ffv1(str(tmp_path / "s" / n)) for n in names)
    assert compact_session(tmp_path / "s") == len(names)
    assert all(fmt.is_ffv1(str(tmp_path / "s" / n)) for n in names)
    assert compact_session(tmp_path / "s") == 0
    with SessionSource(tmp_path / "s") as src:
        for a, b in zip(pairs, src):
            assert np.array_equal(a.nir, b.nir)


# -- the command ----------------------------------------------------------------------------
def test_record_command_imports_a_source_and_refuses_existing_dir(tmp_path, capsys):
    from nirf_overlay.cli import main

    out = tmp_path / "s"
    rc = main(["record", "--phantom", "--size", "96x64", "--seconds", "1", "--out", str(out),
               "--label", "bench 1", "--quiet", "--ffv1"])
    assert rc == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("recorded 30 frames (0 not written, 0 dropped by the source)")
    with SessionSource(out) as src:
        assert src.info.frame_count == 30 and not src.interrupted
        assert src.own_calibration() is not None  # the phantom's, recorded with it
    assert all(fmt.is_ffv1(str(p)) for p in out.glob("nir_*.mkv"))
    rc = main(["record", "--phantom", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "exists and is not empty" in err


def test_recording_core_does_not_import_qt():
    code = ("import sys; import nirf_overlay.recording, nirf_overlay.cli.record; "
            "assert not any(m.startswith('PyQt5') for m in sys.modules)")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
