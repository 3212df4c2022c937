"""File, image-sequence and combined-stream sources, on inputs written here.

Every input is made in the test's own temporary folder with the imageio-ffmpeg
binary (real H.264 via libx264, FFV1 gray16le) or OpenCV/tifffile, and read
back through :func:`nirf_overlay.sources.open_source`.  16-bit NIR must come
back bit-identical through every path.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

import cv2
import imageio_ffmpeg
import numpy as np
import pytest
import tifffile

from nirf_overlay.errors import SourceError
from nirf_overlay.sources import SourceSpec, open_source

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
W, H, N, FPS = 160, 120, 8, 30.0


# -- inputs ---------------------------------------------------------------------

def _ffmpeg(raw: np.ndarray, pix_fmt: str, out: str, *codec, fps: float = FPS, size=(W, H)):
    """Encode raw frames with the ffmpeg binary (stdin rawvideo)."""
    cmd = [FFMPEG, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", pix_fmt,
           "-s", f"{size[0]}x{size[1]}", "-r", str(fps), "-i", "-", *codec, out]
    subprocess.run(cmd, input=np.ascontiguousarray(raw).tobytes(), check=True)
    return out


def wl_code(k: int) -> int:
    """The blue level frame ``k`` of the WL test video carries (survives H.264)."""
    return 30 + 20 * k


def make_wl(n=N, rng=None) -> np.ndarray:
    """(n, H, W, 3) uint8 BGR colour frames whose left block encodes the index."""
    rng = rng or np.random.default_rng(0)
    wl = np.empty((n, H, W, 3), np.uint8)
    wl[..., 0], wl[..., 1], wl[..., 2] = 60, 120, 200  # clearly colour
    for k in range(n):
        wl[k, :, : W // 2, 0] = wl_code(k)
    wl[:, :, W // 2:, :] += rng.integers(0, 20, (n, H, W - W // 2, 3), dtype=np.uint8)
    return wl


def decoded_code(wl: np.ndarray) -> int:
    return int(round((float(wl[10:-10, 10: W // 2 - 10, 0].mean()) - 30) / 20))


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """Write every test input once; return their paths and the truth."""
    d = tmp_path_factory.mktemp("media")
    rng = np.random.default_rng(2024)
    wl = make_wl(rng=rng)
    nir16 = rng.integers(0, 4096, (N, H, W), dtype=np.uint16)  # 12-bit counts
    nir16[:, :4, :4] = 65535  # and full-range values: nothing may clip
    nir8 = rng.integers(0, 256, (N, H, W), dtype=np.uint8)
    p = {"wl": wl, "nir16": nir16, "nir8": nir8}
    p["wl.mp4"] = _ffmpeg(wl, "bgr24", str(d / "wl.mp4"), "-c:v", "libx264", "-preset",
                          "ultrafast", "-pix_fmt", "yuv420p")
    p["wl.avi"] = _ffmpeg(wl, "bgr24", str(d / "wl.avi"), "-c:v", "mjpeg", "-q:v", "2")
    p["nir16.mkv"] = _ffmpeg(nir16, "gray16le", str(d / "nir16.mkv"), "-c:v", "ffv1")
    p["nir16.avi"] = _ffmpeg(nir16, "gray16le", str(d / "nir16.avi"), "-c:v", "ffv1")
    p["nir8.mkv"] = _ffmpeg(nir8, "gray", str(d / "nir8.mkv"), "-c:v", "ffv1")
    # 8-bit NIR stored the way many recorders do: gray picture in a colour codec
    p["nir8_yuv.mkv"] = _ffmpeg(nir8, "gray", str(d / "nir8_yuv.mkv"), "-c:v", "ffv1",
                                "-pix_fmt", "yuv444p")
    p["nir_short.mkv"] = _ffmpeg(nir16[: N - 3], "gray16le", str(d / "nir_short.mkv"),
                                 "-c:v", "ffv1")
    p["nir12.mkv"] = _ffmpeg(nir16 & 4095, "gray16le", str(d / "nir12.mkv"), "-c:v", "ffv1",
                             "-pix_fmt", "gray12le")
    p["wl_gray.mkv"] = _ffmpeg(nir8, "gray", str(d / "wl_gray.mkv"), "-c:v", "ffv1")
    big = np.zeros((N, 2 * H, 2 * W), np.uint16)
    p["nir_big.mkv"] = _ffmpeg(big, "gray16le", str(d / "nir_big.mkv"), "-c:v", "ffv1",
                               size=(2 * W, 2 * H))
    for name in ("seq_nir16_png", "seq_nir16_tiff", "seq_nir8_png", "seq_wl_png", "seq_wl_gray"):
        (d / name).mkdir()
    for k in range(N):
        # numbering starts at 1 on purpose: recorders rarely start at 0
        cv2.imwrite(str(d / "seq_nir16_png" / f"{k + 1:06d}.png"), nir16[k])
        tifffile.imwrite(str(d / "seq_nir16_tiff" / f"{k + 1:06d}.tiff"), nir16[k])
        cv2.imwrite(str(d / "seq_nir8_png" / f"{k + 1:06d}.png"), nir8[k])
        cv2.imwrite(str(d / "seq_wl_png" / f"{k + 1:04d}.png"), wl[k])
        cv2.imwrite(str(d / "seq_wl_gray" / f"{k + 1:04d}.png"), nir8[k])
    p["seq_nir16_png"] = str(d / "seq_nir16_png" / "%06d.png")
    p["seq_nir16_tiff"] = str(d / "seq_nir16_tiff" / "%06d.tiff")
    p["seq_nir8_png"] = str(d / "seq_nir8_png" / "%06d.png")
    p["seq_wl_png"] = str(d / "seq_wl_png" / "%04d.png")
    p["seq_wl_gray"] = str(d / "seq_wl_gray" / "%04d.png")
    # combined: lossless FFV1 (bgr0) so the NIR half comes back exactly
    sbs = np.concatenate([wl, np.repeat(nir8[..., None], 3, axis=3)], axis=2)  # NIR right
    p["sbs.mkv"] = _ffmpeg(sbs, "bgr24", str(d / "sbs.mkv"), "-c:v", "ffv1", "-pix_fmt", "bgr0",
                           size=(2 * W, H))
    tb = np.concatenate([np.repeat(nir8[..., None], 3, axis=3), wl], axis=1)  # NIR top
    p["tb.mp4"] = _ffmpeg(tb, "bgr24", str(d / "tb.mp4"), "-c:v", "libx264", "-preset",
                          "ultrafast", "-pix_fmt", "yuv420p", size=(W, 2 * H))
    p["dir"] = d
    return p


def read_all(spec: SourceSpec):
    with open_source(spec) as src:
        pairs = list(src)
        return src, pairs


# -- the two-stream file paths ----------------------------------------------------

@pytest.mark.parametrize("nir_key", ["nir16.mkv", "nir16.avi", "seq_nir16_png", "seq_nir16_tiff"])
@pytest.mark.parametrize("wl_key", ["wl.mp4", "wl.avi", "seq_wl_png"])
def test_16bit_nir_is_bit_identical_through_every_pair_path(media, wl_key, nir_key):
    src, pairs = read_all(SourceSpec(wl=media[wl_key], nir=media[nir_key]))
    assert len(pairs) == N
    assert src.info.size == (W, H) and src.info.frame_count == N and src.info.seekable
    assert src.info.nir_bits == 16
    assert src.stats.status == "ended" and src.stats.length_mismatch == 0
    for k, pair in enumerate(pairs):
        assert pair.index == k
        assert pair.wl.shape == (H, W, 3) and pair.wl.dtype == np.uint8
        assert pair.nir.shape == (H, W) and pair.nir.dtype == np.uint16
        assert np.array_equal(pair.nir, media["nir16"][k]), f"NIR frame {k} changed"
        assert decoded_code(pair.wl) == k, "WL and NIR must pair by index"
        assert pair.wl_time == pytest.approx(k / FPS, abs=2e-3)
        assert pair.nir_time == pytest.approx(k / FPS, abs=2e-3)


@pytest.mark.parametrize("nir_key", ["nir8.mkv", "seq_nir8_png", "nir8_yuv.mkv"])
def test_8bit_nir_keeps_its_values_and_says_8_bits(media, nir_key):
    src, pairs = read_all(SourceSpec(wl=media["wl.mp4"], nir=media[nir_key]))
    assert src.info.nir_bits == 8
    assert len(pairs) == N
    for k, pair in enumerate(pairs):
        assert pair.nir.dtype == np.uint16 and pair.nir_bits == 8
        assert pair.nir_full_scale == 255
        truth = media["nir8"][k].astype(np.uint16)
        if nir_key == "nir8_yuv.mkv":
            # gray -> limited-range YUV -> BGR rounds by one count; never scaled
            assert src.info.extra["nir_mode"] == "bgr"
            assert np.abs(pair.nir.astype(int) - truth).max() <= 1
        else:
            assert np.array_equal(pair.nir, truth), "never rescaled"


def test_nir_bits_override(media):
    with open_source(SourceSpec(wl=media["wl.mp4"], nir=media["nir16.mkv"], nir_bits=12)) as src:
        pair = src.read()
        assert src.info.nir_bits == 12 and pair.nir_bits == 12
        assert np.array_equal(pair.nir, media["nir16"][0])  # the label changes, not the data
    with pytest.raises(SourceError, match=r"nir8\.mkv: --nir-bits 12 but the stream carries 8-bit"):
        open_source(SourceSpec(wl=media["wl.mp4"], nir=media["nir8.mkv"], nir_bits=12))


def test_per_frame_gain_and_exposure_from_a_sidecar_csv(media, tmp_path):
    import shutil

    nir = tmp_path / "nir.mkv"
    shutil.copy(media["nir16.mkv"], nir)
    rows = ["frame,gain,exposure_ms,notes"] + [
        f"{k},{1.0 if k < 4 else 2.0},{16 if k != 6 else ''},x" for k in range(N)]
    (tmp_path / "nir.frames.csv").write_text("\n".join(rows) + "\n")
    with open_source(SourceSpec(wl=media["wl.mp4"], nir=str(nir))) as src:
        got = [(p.gain, p.exposure_ms) for p in src]
    assert got[3] == (1.0, 16.0) and got[4] == (2.0, 16.0)
    assert got[6] == (2.0, None)  # an empty cell is unknown, not zero
    # without a sidecar the source says it does not know
    with open_source(SourceSpec(wl=media["wl.mp4"], nir=media["nir16.mkv"])) as src:
        pair = src.read()
        assert pair.gain is None and pair.exposure_ms is None
    # an explicit CSV without the columns is a one-line error naming it
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(SourceError, match=r"bad\.csv: per-frame metadata needs"):
        open_source(SourceSpec(wl=media["wl.mp4"], nir=media["nir16.mkv"],
                               options={"frame_meta": str(bad)}))


@pytest.mark.parametrize("wl_key,nir_key", [("wl.mp4", "nir16.mkv"), ("seq_wl_png", "seq_nir16_tiff")])
def test_seek_and_loop(media, wl_key, nir_key):
    with open_source(SourceSpec(wl=media[wl_key], nir=media[nir_key], loop=True)) as src:
        for target in (5, 2, 0, N - 1):
            src.seek(target)
            pair = src.read()
            assert pair.index == target
            assert np.array_equal(pair.nir, media["nir16"][target])
            assert decoded_code(pair.wl) == target
        # we are past the last frame now: a looping source starts again
        pair = src.read()
        assert pair.index == 0 and pair.meta["loop"] == 1
        assert np.array_equal(pair.nir, media["nir16"][0])
        indices = [src.read().index for _ in range(N + 2)]
        assert indices == list(range(1, N)) + [0, 1, 2]
        assert src.stats.status == "ok"


def test_realtime_paces_at_the_file_rate(media):
    # A lower bound only: pacing may never deliver faster than the file's rate.
    with open_source(SourceSpec(wl=media["wl.mp4"], nir=media["nir16.mkv"], realtime=True)) as src:
        t0 = time.monotonic()
        pairs = list(src)
        elapsed = time.monotonic() - t0
    assert len(pairs) == N
    assert elapsed >= (N - 1) / FPS * 0.95


def test_shorter_file_wins_and_the_difference_is_reported(media, caplog):
    with caplog.at_level(logging.WARNING, logger="nirf_overlay.sources"):
        src, pairs = read_all(SourceSpec(wl=media["wl.mp4"], nir=media["nir_short.mkv"]))
    assert len(pairs) == N - 3 and src.info.frame_count == N - 3
    assert src.stats.length_mismatch == 3
    assert "WL has 8 frames, NIR 5" in src.stats.message
    assert any("NIR 5" in r.getMessage() for r in caplog.records)
    assert all(np.array_equal(p.nir, media["nir16"][p.index]) for p in pairs)


@pytest.mark.parametrize("ext", ["mkv", "avi"])
def test_truncated_file_ends_cleanly_with_what_it_had(media, tmp_path, ext):
    good = media[f"nir16.{ext}"]
    data = open(good, "rb").read()
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(data[: int(len(data) * 0.55)])
    src, pairs = read_all(SourceSpec(wl=media["wl.mp4"], nir=str(cut)))
    assert 0 < len(pairs) < N
    for pair in pairs:  # what it had is intact
        assert np.array_equal(pair.nir, media["nir16"][pair.index])
    assert src.stats.status == "ended"
    assert src.info.extra["nir_frames"] == N  # the container still promises every frame
    assert src.stats.message == f"{cut}: ended after {len(pairs)} of {N} frames (truncated or corrupt file)"


def test_truncated_image_sequence_ends_at_the_bad_file(media, tmp_path):
    for k in range(N):
        tifffile.imwrite(str(tmp_path / f"{k:03d}.tif"), media["nir16"][k])
    (tmp_path / "005.tif").write_bytes(b"not a tiff")
    src, pairs = read_all(SourceSpec(wl=media["wl.mp4"], nir=str(tmp_path / "%03d.tif")))
    assert [p.index for p in pairs] == [0, 1, 2, 3, 4]
    assert "005.tif: unreadable image" in src.stats.message


# -- combined streams ---------------------------------------------------------------

def test_side_by_side_combined_file(media):
    src, pairs = read_all(SourceSpec(combined=media["sbs.mkv"], layout="side-by-side"))
    assert src.info.size == (W, H) and src.info.nir_bits == 8 and src.info.seekable
    assert len(pairs) == N
    for k, pair in enumerate(pairs):
        assert pair.wl.shape == (H, W, 3) and pair.wl.flags["C_CONTIGUOUS"]
        assert np.array_equal(pair.wl, media["wl"][k])  # FFV1 bgr0 is lossless
        assert pair.nir.dtype == np.uint16 and pair.nir.shape == (H, W)
        assert np.array_equal(pair.nir, media["nir8"][k].astype(np.uint16))


def test_top_bottom_combined_file_with_nir_on_top(media):
    spec = SourceSpec(combined=media["tb.mp4"], layout="top-bottom", nir_half="top")
    with open_source(spec) as src:
        src.seek(4)
        pair = src.read()
        assert pair.index == 4 and decoded_code(pair.wl) == 4
        # H.264 is lossy: the NIR half is close to, not equal to, what was written
        err = np.abs(pair.nir.astype(int) - media["nir8"][4].astype(int))
        assert pair.nir.dtype == np.uint16 and np.median(err) <= 12
        assert src.info.extra["nir_half"] == "top"


def test_combined_with_the_halves_swapped_is_refused(media):
    # NIR is on the right; claiming left puts the colour WL into the NIR slot.
    with pytest.raises(SourceError, match=r"sbs\.mkv: the NIR half \(left\) is colour"):
        open_source(SourceSpec(combined=media["sbs.mkv"], nir_half="left"))
    with pytest.raises(SourceError, match="--nir-half top: does not fit --layout side-by-side"):
        open_source(SourceSpec(combined=media["sbs.mkv"], nir_half="top"))


# -- bad input: one line naming the input ------------------------------------------

def _one_line(e: SourceError, name: str) -> None:
    text = str(e)
    assert "\n" not in text and text.startswith(name), text


def test_bad_inputs_each_give_one_line_naming_the_input(media, tmp_path, capfd):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    empty = tmp_path / "empty.mkv"
    empty.write_bytes(b"")
    cases = [
        (dict(wl=str(tmp_path / "missing.mp4"), nir=media["nir16.mkv"]),
         str(tmp_path / "missing.mp4"), "no such file"),
        (dict(wl=media["wl.mp4"], nir=str(tmp_path / "nope" / "%06d.tiff")),
         str(tmp_path / "nope" / "%06d.tiff"), "no such folder"),
        (dict(wl=media["wl.mp4"], nir=str(tmp_path / "%06d.tiff")),
         str(tmp_path / "%06d.tiff"), "no files match"),
        (dict(wl=str(junk), nir=media["nir16.mkv"]), str(junk), "cannot open as video"),
        (dict(wl=media["wl.mp4"], nir=str(empty)), str(empty), "cannot open as video"),
        (dict(wl=media["wl.mp4"], nir=media["nir_big.mkv"]), media["nir_big.mkv"],
         "NIR is 320x240 but WL"),
        (dict(wl=media["wl_gray.mkv"], nir=media["nir16.mkv"]), media["wl_gray.mkv"],
         "single-channel"),
        (dict(wl=media["seq_wl_gray"], nir=media["nir16.mkv"]), media["seq_wl_gray"],
         "single-channel"),
        (dict(wl=media["wl.mp4"], nir=media["wl.avi"]), media["wl.avi"], "NIR stream is colour"),
        (dict(wl=media["wl.mp4"], nir=media["nir12.mkv"]), media["nir12.mkv"],
         "NIR pixel format gray12le cannot be read without losing bits"),
        (dict(wl="/dev/video63", nir="/dev/video62"), "/dev/video63", "cannot open the video device"),
        (dict(wl="63", nir="62"), "63", "cannot open the video device"),
        (dict(wl="rtsp://127.0.0.1:9/none", nir="rtsp://127.0.0.1:9/none",
              options={"open_timeout": 1.0}), "rtsp://127.0.0.1:9/none", "cannot open the stream"),
        (dict(wl=media["wl.mp4"], nir="udp://127.0.0.1:9"), media["wl.mp4"],
         "is a file but udp://127.0.0.1:9 is a live input"),
        (dict(combined=str(tmp_path / "missing.mkv")), str(tmp_path / "missing.mkv"), "no such file"),
        (dict(combined=media["wl_gray.mkv"]), media["wl_gray.mkv"], "single-channel"),
    ]
    capfd.readouterr()
    for kwargs, name, problem in cases:
        with pytest.raises(SourceError) as info:
            open_source(SourceSpec(**kwargs))
        _one_line(info.value, name)
        assert problem in str(info.value), str(info.value)
    out, err = capfd.readouterr()
    assert err == "" and out == "", "OpenCV/FFmpeg must not print their own warnings"


@pytest.mark.parametrize("case", ["missing", "sizes", "gray_wl", "colour_nir"])
def test_cli_prints_one_line_and_exits_non_zero(media, tmp_path, case):
    """User mistakes through ``nirf-overlay process``: one line, no traceback, exit 2."""
    missing = str(tmp_path / "missing.mp4")
    wl, nir, expected = {
        "missing": (missing, "x.mkv", f"{missing}: no such file"),
        "sizes": (media["wl.mp4"], media["nir_big.mkv"], f"{media['nir_big.mkv']}: NIR is 320x240"),
        "gray_wl": (media["wl_gray.mkv"], media["nir16.mkv"], f"{media['wl_gray.mkv']}: the white"),
        "colour_nir": (media["wl.mp4"], media["wl.avi"], f"{media['wl.avi']}: the NIR stream is colour"),
    }[case]
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "nirf_overlay", "process", "--wl", wl, "--nir", nir,
                          "--out", str(out), "--no-progress"],
                         capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": _repo_root()})
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"nirf-overlay: error: {expected}"), res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""


def _repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
