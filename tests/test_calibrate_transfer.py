"""`calibrate transfer`: a tower's curve from a step wedge, against the phantom tower's known curve.

The wedge is what a user films: neutral-density steps of known transmittance over a
uniform fluorescent sheet, all in one frame, shown by a tower that auto-gains and
encodes its NIR with the phantom tower's own curves (:func:`~nirf_overlay.phantom.tower.encode_curve`).
Written losslessly (8-bit PNG), the curve measured must match the tower's
(:func:`~nirf_overlay.phantom.tower.curve_lut`) wherever the wedge reaches.  Written as
H.264 (as a frame grabber does), the codec moves grey codes (here by one code, 56 -> 55),
which the measured curve then includes, as it should: it is checked on wedge steps it
was not fitted on.
"""

import subprocess

import cv2
import numpy as np
import pytest

from nirf_overlay.calibration import load_profile
from nirf_overlay.calibration.model import Calibration
from nirf_overlay.calibration.profile import save_profile
from nirf_overlay.calibration.steps import add_layout
from nirf_overlay.cli import main
from nirf_overlay.phantom.tower import curve_lut, encode_curve

STEPS_OD = 0.15 * np.arange(10)  # ten steps of 0.15 OD: transmittance 1 .. 0.045 (22x)
PATCH = (56, 96)  # w, h
NIR_SIZE = (320, 240)


def _patches():
    out = []
    for i, od in enumerate(STEPS_OD):
        x, y = 8 + (i % 5) * 62, 16 + (i // 5) * 110
        out.append((x, y, PATCH[0], PATCH[1], 10.0 ** -od))
    return out


def _wedge_frames(curve, frames=12, seed=0, peak=0.8):
    """NIR display frames (8-bit) of the wedge: the tower's auto-gain puts the open step
    at ``peak``, a little sensor noise, the tower's curve."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(frames):
        lin = np.zeros(NIR_SIZE[::-1])
        for x, y, w, h, t in _patches():
            lin[y:y + h, x:x + w] = peak * t
        lin *= 1 + 0.01 * rng.standard_normal(lin.shape)
        out.append(np.rint(255 * encode_curve(lin, curve)).astype(np.uint8))
    return out


def _h264(path, frames):
    h, w = frames[0].shape[:2]
    cmd = [__import__("imageio_ffmpeg").get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f",
           "rawvideo", "-pix_fmt", "bgr24", "-s", f"{w}x{h}", "-r", "30", "-i", "-",
           "-c:v", "libx264", "-crf", "14", "-pix_fmt", "yuv420p", path]
    data = np.stack([f if f.ndim == 3 else cv2.cvtColor(f, cv2.COLOR_GRAY2BGR) for f in frames])
    subprocess.run(cmd, input=data.tobytes(), check=True)
    return path


def _patch_file(path, rows=None):
    with open(path, "w") as f:
        f.write("x,y,w,h,relative\n")
        for r in rows or _patches():
            f.write(",".join(str(v) for v in r) + "\n")
    return path


def _ratio_errors(transfer, curve, lo_code):
    """Relative error of signal ratios (each code over code 200) the measured curve gives,
    over the codes the wedge reaches."""
    truth = curve_lut(curve)
    codes = np.arange(lo_code, 256)
    got = transfer.decode(codes / 255.0) / transfer.decode(200 / 255.0)
    want = truth[codes] / truth[200]
    return np.abs(got / want - 1)


@pytest.mark.parametrize("curve", ["gamma:2.2", "log:30"])
def test_the_measured_curve_is_the_towers(tmp_path, capsys, image_sequence, curve):
    video = image_sequence(str(tmp_path / "wedge"), _wedge_frames(curve), "png")
    out = str(tmp_path / "tower.json")
    assert main(["calibrate", "transfer", "--nir", video, "--patches",
                 _patch_file(str(tmp_path / "w.csv")), "--out", out]) == 0
    text = capsys.readouterr().out
    assert "10 patches" in text and "tower_transfer.csv" in text
    cal = load_profile(out)
    t = cal.nir_transfer
    assert t.kind == "lut" and t.lut_path == str(tmp_path / "tower_transfer.csv")
    # the wedge's darkest step sits at this display code
    lo = int(np.ceil(255 * encode_curve(np.array(0.8 * 10 ** -STEPS_OD[-1]), curve)))
    err = _ratio_errors(t, curve, lo)
    assert err.max() < 0.03, (err.max(), int(np.argmax(err)) + lo)
    # a rim 2.85x its background reads 2.85x within 2 % (display values would say ~1.6)
    for b in (0.1, 0.2):
        d = encode_curve(np.array([b, 2.85 * b]), curve)
        tbr = float(t.decode(d[1]) / t.decode(d[0]))
        assert abs(tbr / 2.85 - 1) < 0.02, tbr


def test_a_tower_profiles_layout_is_used_for_the_combined_output(tmp_path, capsys):
    curve = "gamma:2.4"
    rng = np.random.default_rng(3)
    frames = []
    for nir in _wedge_frames(curve, frames=8, seed=4):
        f = np.full((400, 720, 3), 6, np.uint8)
        wl = np.empty((240, 320, 3), np.uint8)
        wl[...] = (60, 80, 170)
        f[80:320, 20:340] = cv2.add(wl, rng.integers(0, 30, wl.shape, dtype=np.uint8))
        f[80:320, 380:700] = cv2.cvtColor(nir, cv2.COLOR_GRAY2BGR)
        frames.append(f)
    video = _h264(str(tmp_path / "tower.mp4"), frames)
    out = str(tmp_path / "tower.json")
    cal = add_layout(Calibration(), (20, 80, 320, 240), (380, 80, 320, 240))
    save_profile(cal, out)
    fit_on, held_out = [0, 2, 4, 6, 8, 9], [1, 3, 5, 7]
    rows = _patches()
    assert main(["calibrate", "transfer", "--combined", video, "--patches",
                 _patch_file(str(tmp_path / "w.csv"), [rows[i] for i in fit_on]),
                 "--out", out]) == 0
    cal = load_profile(out)
    assert tuple(cal.layout.nir_rect) == (380, 80, 320, 240)  # kept
    # the held-out steps, as recorded, read their known brightness relative to the open step
    cap = cv2.VideoCapture(video)
    ok, f = cap.read()
    cap.release()
    nir = f[80:320, 380:700, 1]

    def signal(i):
        x, y, w, h, _ = rows[i]
        return float(cal.nir_transfer.decode(np.median(nir[y + 20:y + h - 20, x + 10:x + w - 10]) / 255))

    for i in held_out:
        got = signal(i) / signal(0)
        assert abs(got / rows[i][4] - 1) < 0.03, (i, got, rows[i][4])


def test_patches_out_of_order_or_saturated_are_refused_in_one_line(tmp_path, capsys):
    curve = "gamma:2.2"
    video = _h264(str(tmp_path / "wedge.mp4"), _wedge_frames(curve, frames=4))
    rows = _patches()
    swapped = rows[:2] + [rows[3][:4] + (rows[2][4],), rows[2][:4] + (rows[3][4],)] + rows[4:]
    out = str(tmp_path / "p.json")
    assert main(["calibrate", "transfer", "--nir", video, "--patches",
                 _patch_file(str(tmp_path / "s.csv"), swapped), "--out", out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "reads no brighter than" in err[0], err
    hot = _h264(str(tmp_path / "hot.mp4"), _wedge_frames(curve, frames=4, peak=1.3))
    assert main(["calibrate", "transfer", "--nir", hot, "--patches",
                 _patch_file(str(tmp_path / "w.csv")), "--out", out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "saturated" in err[0], err
    import os

    assert not os.path.exists(out)
