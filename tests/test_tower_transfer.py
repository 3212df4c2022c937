"""The NIR transfer curve: display values back to linear signal, and every output of a run
without one saying that its ratios are of display values.

The recording is a real H.264 8-bit file (FFmpeg libx264, yuv420p): the phantom's white
light beside its NIR encoded for display with a gamma of 2.2, as a tower shows it.
"""

import csv
import json
import re
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest

from nirf_overlay.calibration.transfer import TransferError, parse_transfer
from nirf_overlay.cli import main
from nirf_overlay.phantom import Phantom, PhantomParams
from nirf_overlay.processing.result import FrameResult, PlaneCheck, RimMeasurement
from nirf_overlay.processing.transfer import NirEntry, nir_signal

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
SIZE = (320, 192)
FRAMES = 8
GAMMA = 2.2


@pytest.mark.parametrize("spec", ["gamma:2.2", "gamma:1.8", "srgb"])
def test_encode_then_decode_gives_back_linear_signal(spec):
    t = parse_transfer(spec)
    signal = np.linspace(0.0, 1.0, 4001)
    display8 = np.rint(t.encode(signal) * 255).astype(np.uint16)  # what the tower writes
    lin, bits = t.apply(display8, 8)
    assert bits == 16 and lin.dtype == np.uint16
    back = lin / 65535.0
    # 8-bit quantisation of the display value bounds the error: half a display step
    # times the curve's slope there
    slope = np.gradient(t.decode(np.arange(256) / 255.0)) * 255
    bound = 0.5 / 255 * slope[display8] + 1.5 / 65535
    assert np.all(np.abs(back - signal) <= bound + 1e-12)
    assert np.abs(back - signal)[signal > 0.1].max() < 0.012  # within ~1 % where it matters
    assert back[-1] == 1.0 and lin[-1] == 65535  # saturated display stays saturated


def test_a_lut_file_decodes_like_the_curve_it_samples(tmp_path):
    xs = np.linspace(0, 1, 33)
    path = tmp_path / "tower.csv"
    path.write_text("display,linear\n" + "".join(f"{x:.6f},{3 * x ** GAMMA:.8f}\n" for x in xs))
    lut, gamma = parse_transfer(f"lut:{path}"), parse_transfer(f"gamma:{GAMMA}")
    codes = np.arange(256, dtype=np.uint16)
    a = lut.apply(codes, 8)[0].astype(int)
    b = gamma.apply(codes, 8)[0].astype(int)
    assert np.abs(a - b).max() <= 0.004 * 65535  # piecewise linear between 33 rows
    assert lut.table(8) is lut.table(8)  # one table per bit depth, built once


def test_linear_and_raw_16_bit_are_left_alone():
    nir = np.arange(0, 4096, dtype=np.uint16).reshape(64, 64)
    out, bits, signal = NirEntry(parse_transfer("linear"))(nir, 12)
    assert out is nir and bits == 12 and signal == "linear"
    out, bits, signal = NirEntry(None)(nir, 12)
    assert out is nir and signal == "linear"  # raw counts
    assert nir_signal(None, 8) == "display" and nir_signal(parse_transfer("srgb"), 8) == "linear"


@pytest.mark.parametrize("text,message", [
    ("gamma", r"--nir-transfer: 'gamma': the gamma must be a number; expected linear, gamma:G"),
    ("log", r"--nir-transfer: 'log' is not a transfer; expected linear, gamma:G"),
    ("gamma:0", r"--nir-transfer: 'gamma:0': gamma 0 is outside 0.1..10"),
    ("lut:", r"--nir-transfer: 'lut:' is not a transfer"),
    ("lut:/nonexistent/t.csv", r"--nir-transfer: /nonexistent/t\.csv: no such LUT file$"),
])
def test_a_bad_transfer_is_one_line_naming_the_option(text, message, tmp_path, capsys):
    with pytest.raises(TransferError, match=message):
        parse_transfer(text, what="--nir-transfer")
    rc = main(["process", "--nir-transfer", text, "--out", str(tmp_path / "o"), "--no-video"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and re.search(message, err[0]), err


# -- a run on display-encoded 8-bit NIR ---------------------------------------------

def _tower_sbs(directory, gamma):
    """Phantom WL | NIR encoded with ``gamma`` to 8 bits, side by side, H.264."""
    ph = Phantom(PhantomParams(seed=3, size=SIZE, fps=10.0, n_lesions=2))
    enc = parse_transfer(f"gamma:{gamma}")
    frames = []
    for i in range(FRAMES):
        pair = ph.frame(i)
        sig = pair.nir.astype(np.float64) / pair.nir_full_scale
        gray = np.rint(enc.encode(sig) * 255).astype(np.uint8)
        frames.append(np.concatenate([pair.wl, np.repeat(gray[..., None], 3, axis=2)], axis=1))
    out = str(directory / f"tower_sbs_{gamma}.mp4")
    cmd = [FFMPEG, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "bgr24",
           "-s", f"{2 * SIZE[0]}x{SIZE[1]}", "-r", "10", "-i", "-", "-c:v", "libx264",
           "-preset", "ultrafast", "-crf", "10", "-pix_fmt", "yuv420p", out]
    subprocess.run(cmd, input=np.ascontiguousarray(np.stack(frames)).tobytes(), check=True)
    return out


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# a mild curve for the run without a transfer, so that its rims are found and rims.csv
# has rows to mark (on gamma 2.2 display values this phantom's rims are not found at all)
@pytest.mark.parametrize("gamma,transfer", [(1.2, None), (GAMMA, f"gamma:{GAMMA}")])
def test_process_says_when_its_ratios_are_of_display_values(tmp_path, capsys, gamma, transfer):
    out = tmp_path / "out"
    argv = ["process", "--combined", _tower_sbs(tmp_path, gamma), "--out", str(out),
            "--no-video", "--no-progress"]
    if transfer:
        argv += ["--nir-transfer", transfer]
    assert main(argv) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "display values" in line]
    metrics, rims = _rows(out / "metrics.csv"), _rows(out / "rims.csv")
    assert len(metrics) == FRAMES and rims  # the phantom's rims are found either way
    want = "linear" if transfer else "display"
    assert {r["nir_signal"] for r in metrics} == {want} == {r["nir_signal"] for r in rims}
    if transfer:
        assert warnings == []
    else:
        assert len(warnings) == 1 and "--nir-transfer" in warnings[0]


def _result(signal):
    rim = RimMeasurement(rim_id=1, target_intensity=3.0, background_intensity=1.0, tbr=3.0,
                         contrast=2.0, rim_thickness_px=9.0, rim_thickness_mm=None,
                         rim_completeness=0.9, rim_area_px=400.0, rim_area_mm2=None,
                         core_area_px=300.0, core_area_mm2=None, centroid=(40.0, 30.0),
                         bbox=(20, 10, 40, 40))
    return FrameResult(index=0, time_s=0.0, composite=np.zeros((64, 96, 3), np.uint8),
                       rim_mask=np.zeros((64, 96), np.uint8), rims=[rim], plane=PlaneCheck(),
                       nir_signal=signal)


def test_snapshot_metrics_say_display_values(tmp_path):
    from nirf_overlay.frame import FramePair
    from nirf_overlay.snapshot import write_snapshot

    pair = FramePair(wl=np.zeros((64, 96, 3), np.uint8), nir=np.zeros((64, 96), np.uint16), nir_bits=8)
    for signal in ("display", "linear"):
        paths = write_snapshot(tmp_path / signal, pair, _result(signal), stem="s")
        meta = json.loads(open(paths["metrics"]).read())
        assert meta["nir_signal"] == signal == meta["metrics"]["nir_signal"]
        assert meta["rims"][0]["nir_signal"] == signal


def test_hud_rim_label_says_display_values():
    pytest.importorskip("PyQt5")
    from nirf_overlay.gui.hud import rim_label

    r = _result("display").rims[0]
    assert rim_label(r, "display").startswith("TBR 3.0 (display values)")
    assert rim_label(r, "linear").startswith("TBR 3.0\n")


def test_batch_summary_and_report_say_display_values(tmp_path):
    from nirf_overlay.batch.report import write_report
    from nirf_overlay.batch.study import SUMMARY_COLUMNS, summarise

    shown, raw = _result("display"), _result("linear")
    rows = {"tower": shown, "camera": raw}
    summary = [summarise(name, [r.frame_row()], r.rim_rows(), {}, None) for name, r in rows.items()]
    assert SUMMARY_COLUMNS[-1] == "nir_signal"
    assert [s["nir_signal"] for s in summary] == ["display", "linear"]
    path = tmp_path / "report.html"
    write_report(str(path), summary, [dict(r.frame_row(), session=n) for n, r in rows.items()])
    text = path.read_text()
    assert "Ratios of display values:</strong> tower has" in text and "camera has" not in text
