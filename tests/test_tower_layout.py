"""Combined (tower) frames: custom insets, an enlarged NIR inset mapped into WL-inset
pixels, the layout taken from a calibration profile, and bad rectangles refused in one line.

The recordings are real H.264 8-bit (yuv420p) files written with FFmpeg's libx264 (the
OpenCV build here has no H.264 encoder), as a frame grabber would record a tower.
"""

import subprocess

import imageio_ffmpeg
import numpy as np
import pytest

from nirf_overlay.calibration import Calibration, CalibrationRequest, resolve_calibration, save_profile
from nirf_overlay.calibration.model import Layout
from nirf_overlay.cli import main
from nirf_overlay.sources import SourceSpec, open_source
from nirf_overlay.sources._cv import NirMode
from nirf_overlay.sources.combined import Splitter

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
FRAME = (1280, 720)
WL_RECT = (16, 120, 480, 360)
NIR_RECT = (560, 0, 720, 540)  # 1.5 x the WL inset: an enlarged NIR view
N = 6
DISC = (300.0, 140.0, 40.0)  # x, y, radius in WL-inset pixels


def _nir_truth(size):
    """(H, W) uint8 NIR in WL-inset pixels: a dim field with a bright disc and a ramp."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    nir = 40 + (x * 60 // w)
    nir[(x - DISC[0]) ** 2 + (y - DISC[1]) ** 2 <= DISC[2] ** 2] = 220
    return nir.astype(np.uint8)


def _combined_frames():
    wl_w, wl_h = WL_RECT[2:]
    nir = _nir_truth((wl_w, wl_h))
    import cv2

    big = cv2.resize(nir, NIR_RECT[2:], interpolation=cv2.INTER_LINEAR)
    frames = np.full((N, FRAME[1], FRAME[0], 3), 12, np.uint8)  # the tower's dark surround
    x, y, w, h = WL_RECT
    frames[:, y:y + h, x:x + w] = (60, 110, 190)  # colour white light
    frames[:, y + 20:y + 60, x + 20:x + 60] = (200, 40, 40)
    x, y, w, h = NIR_RECT
    frames[:, y:y + h, x:x + w] = big[..., None]
    return frames, nir


@pytest.fixture(scope="module")
def tower_file(tmp_path_factory):
    frames, nir = _combined_frames()
    out = str(tmp_path_factory.mktemp("tower") / "tower.mp4")
    cmd = [FFMPEG, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "bgr24",
           "-s", f"{FRAME[0]}x{FRAME[1]}", "-r", "30", "-i", "-", "-c:v", "libx264",
           "-preset", "ultrafast", "-crf", "12", "-pix_fmt", "yuv420p", out]
    subprocess.run(cmd, input=frames.tobytes(), check=True)
    return out, nir


def _disc_centre(nir):
    ys, xs = np.nonzero(nir > 130)
    return xs.mean(), ys.mean()


def test_an_enlarged_nir_inset_is_mapped_exactly_into_wl_inset_pixels():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 256, (60, 80)).astype(np.uint8)
    frame = np.zeros((200, 300, 3), np.uint8)
    frame[10:70, 5:85] = (30, 90, 200)
    frame[20:140, 100:260] = np.kron(truth, np.ones((2, 2), np.uint8))[..., None]  # 2x, exact
    split = Splitter(Layout((5, 10, 80, 60), (100, 20, 160, 120)), NirMode("bgr", 8), "t")
    wl, nir = split(frame)
    assert wl.shape == (60, 80, 3) and nir.dtype == np.uint16
    assert np.array_equal(nir, truth)  # INTER_AREA of a 2x inset: the pixel itself


def test_custom_layout_with_an_enlarged_nir_inset_from_h264(tower_file):
    path, truth = tower_file
    spec = SourceSpec(combined=path, layout="custom", wl_rect=WL_RECT, nir_rect=NIR_RECT)
    with open_source(spec) as src:
        assert src.info.size == WL_RECT[2:] and src.info.nir_bits == 8
        pairs = list(src)
    assert len(pairs) == N
    for pair in pairs:
        assert pair.wl.shape == (360, 480, 3) and pair.nir.shape == (360, 480)
        assert tuple(pair.wl[40, 40]) == pytest.approx((200, 40, 40), abs=12)  # the WL marker
        cx, cy = _disc_centre(pair.nir)
        assert abs(cx - DISC[0]) < 0.5 and abs(cy - DISC[1]) < 0.5  # mapped, not shifted
        err = np.abs(pair.nir.astype(int) - truth.astype(int))
        assert np.median(err) <= 2


def test_the_profile_layout_alone_opens_a_tower_recording(tower_file, tmp_path):
    path, truth = tower_file
    profile = save_profile(Calibration(layout=Layout(WL_RECT, NIR_RECT), mm_per_px=0.2),
                           str(tmp_path / "tower.json"))
    with open_source(SourceSpec(combined=path)) as src:
        assert src.info.size == (640, 720)  # the default halves, until the profile says
        resolved = resolve_calibration(CalibrationRequest(profile=profile), src)
        assert resolved.calibration.layout == Layout(WL_RECT, NIR_RECT)
        assert src.info.size == WL_RECT[2:]
        src.seek(2)
        pair = src.read()
    assert pair.nir.shape == (360, 480)
    assert np.median(np.abs(pair.nir.astype(int) - truth.astype(int))) <= 2
    # the user's own layout wins over the profile's
    with open_source(SourceSpec(combined=path, layout="side-by-side", nir_half="right")) as src:
        with pytest.raises(Exception, match="frame_size is 480x360 but the source is 640x720"):
            resolve_calibration(CalibrationRequest(profile=profile), src)


@pytest.mark.parametrize("rects,message", [
    (("0,0,1300,10", "560,0,720,540"),
     r"--wl-rect 0,0,1300,10: \[0, 0, 1300, 10\] reaches past the 1280x720 frame of \S*tower\.mp4$"),
    (("16,120,480,360", "400,100,720,540"),
     r"--nir-rect 400,100,720,540: overlaps the WL inset by \d+ px"),
    (("16,120,0,360", "560,0,720,540"),
     r"--wl-rect: '16,120,0,360': x and y must be 0 or more, width and height at least 1 px"),
    ((None, "560,0,720,540"), r"--layout custom: needs --wl-rect X,Y,W,H"),
])
def test_bad_rects_get_one_line_naming_the_option(tower_file, tmp_path, capsys, rects, message):
    import re

    argv = ["process", "--combined", tower_file[0], "--layout", "custom", "--out", str(tmp_path / "o")]
    for flag, rect in zip(("--wl-rect", "--nir-rect"), rects):
        if rect is not None:
            argv += [flag, rect]
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse: usage line, then the error
        rc = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err and re.search(message, err[-1]), err
    assert len(err) == 1 or err[0].startswith("usage:"), err
