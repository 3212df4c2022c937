"""Live sources on real network streams: ffmpeg processes serve MPEG-TS over UDP
(and HTTP) on 127.0.0.1, started and stopped by the tests to make streams drop
out and come back.

Each sender loops a short clip whose frames carry their number as a gray
level, so pairs can be checked against what was sent.
"""

from __future__ import annotations

import socket
import subprocess
import time

import imageio_ffmpeg
import numpy as np
import pytest

from nirf_overlay.errors import SourceError
from nirf_overlay.sources import SourceSpec, open_source

pytestmark = pytest.mark.slow

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
W, H, FPS, CLIP = 160, 120, 15, 30
OPTIONS = {"open_timeout": 3.0, "read_timeout": 1.0, "backoff_start": 0.2, "backoff_max": 0.8}


def code(k: int) -> int:
    return 20 + 6 * (k % CLIP)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sender:
    """An ffmpeg process looping a raw clip as H.264 in MPEG-TS, to
    ``udp://127.0.0.1:port`` or served (one client) at ``http://127.0.0.1:port/live.ts``."""

    def __init__(self, raw_path, pix_fmt, out_pix_fmt, size=(W, H), scheme="udp"):
        self.raw_path, self.pix_fmt, self.out_pix_fmt, self.size = raw_path, pix_fmt, out_pix_fmt, size
        if scheme == "udp":
            self.port = free_udp_port()
            self.url = f"udp://127.0.0.1:{self.port}"
            self._out = [f"{self.url}?pkt_size=1316"]
        else:
            self.port = free_tcp_port()
            self.url = f"http://127.0.0.1:{self.port}/live.ts"
            self._out = ["-listen", "1", self.url]
        self.proc = None

    def start(self) -> "Sender":
        w, h = self.size
        self.proc = subprocess.Popen(
            [FFMPEG, "-loglevel", "error", "-re", "-stream_loop", "-1", "-f", "rawvideo",
             "-pix_fmt", self.pix_fmt, "-s", f"{w}x{h}", "-r", str(FPS), "-i", str(self.raw_path),
             "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "5",
             "-pix_fmt", self.out_pix_fmt, "-f", "mpegts", *self._out],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def clips(tmp_path):
    wl = np.empty((CLIP, H, W, 3), np.uint8)
    wl[..., 1], wl[..., 2] = 120, 200
    nir = np.empty((CLIP, H, W), np.uint8)
    for k in range(CLIP):
        wl[k, ..., 0] = code(k)
        nir[k] = code(k)
    sbs = np.concatenate([wl, np.repeat(nir[..., None], 3, axis=3)], axis=2)
    paths = {}
    for name, arr in (("wl", wl), ("nir", nir), ("sbs", sbs)):
        paths[name] = tmp_path / f"{name}.raw"
        arr.tofile(paths[name])
    return paths


@pytest.fixture
def senders():
    started = []
    yield started
    for s in started:
        s.stop()


def read_until(src, predicate, *, limit=25.0, timeout=0.5):
    """Read pairs until ``predicate(pair)``; TimeoutErrors are expected while down."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        try:
            pair = src.read(timeout)
        except TimeoutError:
            continue
        if predicate(pair):
            return pair
    raise AssertionError(f"condition not met within {limit} s; stats {src.stats}")


def frame_code(img) -> int:
    return int(round((float(np.median(img)) - 20) / 6))


def test_udp_pair_newest_wins_nir_dropout_and_recovery(clips, senders):
    wl_tx = Sender(clips["wl"], "bgr24", "yuv420p").start()
    nir_tx = Sender(clips["nir"], "gray", "gray").start()
    senders += [wl_tx, nir_tx]
    spec = SourceSpec(wl=wl_tx.url, nir=nir_tx.url, options=dict(OPTIONS))
    with open_source(spec) as src:
        assert src.info.live and not src.info.seekable and src.info.frame_count is None
        assert src.info.size == (W, H) and src.info.nir_bits == 8
        tol = src.info.extra["pair_tolerance_s"]
        assert tol == pytest.approx(0.5 / FPS)

        # -- pairing: within tolerance, nothing reused, content is what was sent
        pairs, alone = [], []
        while len(pairs) < 12:  # a WL frame with no NIR frame within the tolerance goes out alone
            pair = src.read(5.0)
            (pairs if pair.nir is not None else alone).append(pair)
        assert len(alone) <= 3 and all(p.meta["nir_status"] in ("stale", "lost") for p in alone)
        for pair in pairs:
            assert pair.wl.shape == (H, W, 3) and pair.wl.dtype == np.uint8
            assert pair.nir.shape == (H, W) and pair.nir.dtype == np.uint16
            assert abs(pair.wl_time - pair.nir_time) <= tol
            assert pair.arrival >= pair.wl_time
            assert 0 <= frame_code(pair.nir) < CLIP
            assert int(pair.nir.max()) <= 255
        for a, b in zip(pairs, pairs[1:]):
            assert b.meta["wl_seq"] > a.meta["wl_seq"] and b.meta["nir_seq"] > a.meta["nir_seq"]
            assert b.index > a.index

        # -- a slow reader gets the newest pair; what it missed is counted
        before = src.stats.dropped + src.stats.unpaired_wl
        last_seq = src.read(5.0).meta["wl_seq"]
        time.sleep(1.0)  # ~15 frames arrive meanwhile
        pair = src.read(5.0)
        assert pair.meta["wl_seq"] - last_seq >= 5
        assert src.stats.dropped + src.stats.unpaired_wl >= before + 4
        assert pair.meta["dropped_before"] + pair.meta["unpaired_wl_before"] >= 4  # per pair too

        # -- NIR drops out: WL continues alone, status says so
        nir_tx.stop()
        pair = read_until(src, lambda p: p.meta["nir_status"] == "lost")  # "stale" first
        assert src.stats.status == "nir_lost"
        assert "NIR stream" in src.stats.message and nir_tx.url in src.stats.message
        wl_only = [src.read(5.0) for _ in range(5)]
        assert all(p.nir is None and p.wl.shape == (H, W, 3) for p in wl_only)
        history = src.captures["NIR"].backoff_history
        read_until(src, lambda p: len(history) >= 4)  # let a few reconnect attempts fail
        assert all(p.nir is None for p in [src.read(5.0)])
        assert history[:3] == pytest.approx([0.2, 0.4, 0.8])  # doubling...
        assert max(history) == pytest.approx(0.8)  # ...capped

        # -- the NIR sender comes back: pairs again, reconnect counted
        nir_tx.start()
        pair = read_until(src, lambda p: p.nir is not None, limit=30.0)
        assert src.stats.status == "ok" and src.stats.reconnects >= 1
        assert abs(pair.wl_time - pair.nir_time) <= tol


def test_udp_wl_dropout_times_out_then_recovers(clips, senders):
    wl_tx = Sender(clips["wl"], "bgr24", "yuv420p").start()
    nir_tx = Sender(clips["nir"], "gray", "gray").start()
    senders += [wl_tx, nir_tx]
    with open_source(SourceSpec(wl=wl_tx.url, nir=nir_tx.url, options=dict(OPTIONS))) as src:
        assert src.read(5.0).nir is not None
        wl_tx.stop()
        deadline = time.monotonic() + 20
        while src.stats.status != "reconnecting" and time.monotonic() < deadline:
            try:
                src.read(0.5)
            except TimeoutError:
                pass
        assert src.stats.status == "reconnecting"
        assert "WL stream" in src.stats.message
        for _ in range(3):  # the decoder flushes the stream's last WL frames: they go out alone
            try:
                src.read(0.5)
            except TimeoutError:
                break
        with pytest.raises(TimeoutError, match="no new frame pair within 0.5 s"):
            src.read(0.5)
        wl_tx.start()
        pair = read_until(src, lambda p: p.nir is not None, limit=30.0)
        assert src.stats.status == "ok" and src.stats.reconnects >= 1
        assert pair.wl.shape == (H, W, 3)


def test_http_combined_side_by_side(clips, senders):
    tx = Sender(clips["sbs"], "bgr24", "yuv420p", size=(2 * W, H), scheme="http").start()
    senders.append(tx)
    with open_source(SourceSpec(combined=tx.url, layout="side-by-side",
                                options=dict(OPTIONS))) as src:
        assert src.info.live and src.info.size == (W, H) and src.info.nir_bits == 8
        pairs = [src.read(5.0) for _ in range(6)]
        for pair in pairs:
            assert pair.wl.shape == (H, W, 3) and pair.nir.shape == (H, W)
            assert pair.nir.dtype == np.uint16 and pair.wl_time == pair.nir_time
            # both halves came from the same frame: same number in WL blue and NIR
            assert abs(frame_code(pair.wl[..., 0]) - frame_code(pair.nir)) <= 1
        time.sleep(0.7)
        pair = src.read(5.0)
        assert src.stats.dropped >= 3  # newest wins here too
        assert pair.meta["dropped_before"] >= 3


def test_unreachable_udp_stream_is_one_line(capfd):
    port = free_udp_port()
    with pytest.raises(SourceError) as info:
        open_source(SourceSpec(wl=f"udp://127.0.0.1:{port}", nir=f"udp://127.0.0.1:{port + 1}",
                               options={"open_timeout": 1.0}))
    text = str(info.value)
    assert text.startswith(f"udp://127.0.0.1:{port}: cannot open the stream") and "\n" not in text
    assert capfd.readouterr().err == ""
