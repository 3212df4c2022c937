"""`nirf-overlay process` end to end on a small phantom: files, columns, masks, errors."""

import csv
import os

import cv2
import numpy as np
import pytest
import tifffile

from nirf_overlay.cli import main
from nirf_overlay.processing.result import FRAME_COLUMNS, RIM_COLUMNS

SIZE = "256x160"


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_process_phantom_writes_metrics_rims_masks_and_video(tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["process", "--phantom", "--seed", "2", "--size", SIZE, "--range", "0:0.2",
               "--out", str(out), "--masks", "--no-progress"])
    assert rc == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("process: 6 frames") and "rims found" in summary and "fps" in summary
    metrics = _rows(out / "metrics.csv")
    assert tuple(metrics[0]) == FRAME_COLUMNS
    assert [int(r[0]) for r in metrics[1:]] == list(range(6))
    assert float(metrics[2][1]) == pytest.approx(1 / 30, abs=1e-5)
    rims = _rows(out / "rims.csv")
    assert tuple(rims[0]) == RIM_COLUMNS
    n_rims = [int(r[2]) for r in metrics[1:]]
    assert len(rims) - 1 == sum(n_rims) and sum(n_rims) > 0
    for r in metrics[1:]:
        if int(r[2]) == 0:  # no rim: empty cells
            assert r[3] == "" and r[4] == ""
        else:
            assert float(r[3]) > 1.0 and float(r[3]) == pytest.approx(float(r[4]) + 1, rel=1e-4)
        assert r[11] in ("0", "1")
    masks = sorted(os.listdir(out / "masks"))
    assert masks == [f"{i:06d}.png" for i in range(6)]
    m = cv2.imread(str(out / "masks" / masks[0]), cv2.IMREAD_UNCHANGED)
    assert m.shape == (160, 256) and m.dtype == np.uint8 and set(np.unique(m)) <= {0, 255}
    cap = cv2.VideoCapture(str(out / "overlay.mp4"))
    ok, frame = cap.read()
    assert ok and frame.shape == (160, 256, 3)
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    cap.release()


def test_process_range_start_and_no_video(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["process", "--phantom", "--size", "96x64", "--range", "0.1:0.2", "--out", str(out),
                 "--no-video", "--no-progress"]) == 0
    assert not (out / "overlay.mp4").exists()
    frames = [int(r[0]) for r in _rows(out / "metrics.csv")[1:]]
    assert frames == [3, 4, 5]


def test_process_with_dark_flat_and_mm_per_px(tmp_path, capsys):
    from nirf_overlay.phantom import Phantom, PhantomParams

    ph = Phantom(PhantomParams(seed=0, size=(96, 64)))
    tifffile.imwrite(tmp_path / "dark.tif", ph.dark_frame())
    tifffile.imwrite(tmp_path / "flat.tif", ph.flat_field())
    out = tmp_path / "o"
    assert main(["process", "--phantom", "--size", "96x64", "--range", ":0.1", "--out", str(out),
                 "--dark", str(tmp_path / "dark.tif"), "--flat", str(tmp_path / "flat.tif"),
                 "--mm-per-px", "0.5", "--no-video", "--no-progress"]) == 0
    assert "sizes in mm" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["--range", "5"], "expected START:END"),
    (["--range", "3:1"], "END must be after START"),
])
def test_bad_range_is_refused(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        main(["process", "--phantom", "--size", "96x64", "--out", str(tmp_path), *argv])
    assert e.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("extra,message", [
    (["--dark", "/nonexistent/dark.tif"], "/nonexistent/dark.tif: no such dark frame file"),
    (["--settings", "/nonexistent/s.json"], "/nonexistent/s.json: no such settings file"),
    # (0 and negatives are refused by argparse: tests/test_option_walk.py)
    (["--mm-per-px", "20"], "--mm-per-px: 20.0 is outside 0..10 mm"),
])
def test_bad_inputs_give_one_line_errors(tmp_path, capsys, extra, message):
    rc = main(["process", "--phantom", "--size", "96x64", "--range", ":0.1", "--out",
               str(tmp_path / "o"), "--no-progress", *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.count("\n") == 0 and message in err


def test_unwritable_output_is_one_line_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc = main(["process", "--phantom", "--size", "96x64", "--range", ":0.1", "--out",
               str(blocker / "sub"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "cannot create output directory" in err and "\n" not in err


def test_range_past_the_end_is_refused(tmp_path, capsys):
    # no source: the bundled 3 s sample
    rc = main(["process", "--range", "5:6", "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "--range: starts at 5 s but the source ends at 3 s" in err


def test_default_sample_with_its_profile(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["process", "--range", "1:1.2", "--out", str(out), "--no-video",
                 "--no-progress"]) == 0
    assert "sizes in mm" in capsys.readouterr().out  # the sample profile's mm per pixel
    rows = _rows(out / "metrics.csv")
    assert [int(r[0]) for r in rows[1:]] == list(range(30, 36))
