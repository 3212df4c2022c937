"""``python -m nirf_overlay.evaluate --report DIR``: a real tiny run (320 x 180, 4 frames).

Checks the CSV columns, that the worst-frame PNGs exist at the frame size
plus the legend band, that the truth / found / overlap colours sit where the
masks put them, and that a non-empty DIR is refused in one line.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from nirf_overlay.evaluate_report import (COLOURS, FRAME_COLUMNS, LEGEND_H, LESION_COLUMNS,
                                          SET_COLUMNS, WorstFrames, picture)

W, H = 320, 180


def _run(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    return subprocess.run([sys.executable, "-m", "nirf_overlay.evaluate", *args],
                          capture_output=True, text=True, env=env, cwd=cwd)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("rep") / "report"
    p = _run("--seeds", "31", "--size", f"{W}x{H}", "--frames", "4", "--report", str(out),
             "--worst", "2")
    assert p.returncode == 0, p.stderr
    return out


def _rows(path):
    with open(path, newline="") as f:
        r = csv.DictReader(f)
        return r.fieldnames, list(r)


def test_csv_columns_and_rows(report):
    for name, cols, n in (("sets", SET_COLUMNS, 1), ("frames", FRAME_COLUMNS, 4)):
        fields, rows = _rows(report / f"{name}.csv")
        assert fields == cols and len(rows) == n
    fields, rows = _rows(report / "lesions.csv")
    assert fields == LESION_COLUMNS and rows
    for row in rows:  # signed: measured - true
        err = float(row["thickness_error_mm"])
        assert err == pytest.approx(float(row["thickness_mm"]) - float(row["rim_width_mm"]), abs=1e-4)
    dices = [float(r["dice"]) for r in _rows(report / "frames.csv")[1]]
    assert float(_rows(report / "sets.csv")[1][0]["min_dice"]) == pytest.approx(min(dices), abs=1e-5)


def test_worst_pngs_and_html(report):
    pngs = sorted(p for p in os.listdir(report) if p.endswith(".png"))
    assert len(pngs) == 2
    img = cv2.imread(str(report / pngs[0]))
    assert img.shape == (H + LEGEND_H, W, 3)
    page = (report / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 2
    assert "http://" not in page and "https://" not in page
    for col in SET_COLUMNS + LESION_COLUMNS:
        assert col in page
    # the worst frame is named first, and it is the lowest Dice of frames.csv
    frames = _rows(report / "frames.csv")[1]
    worst = min(frames, key=lambda r: float(r["dice"]))
    assert pngs[0].endswith(f"frame_{worst['frame']}.png")


def test_picture_colours_where_masks_are():
    wl = np.full((H, W, 3), 100, np.uint8)
    truth_rim = np.zeros((H, W), bool)
    found = np.zeros((H, W), bool)
    duct = np.zeros((H, W), bool)
    truth_rim[20:60, 20:60] = True
    found[40:80, 40:80] = True
    duct[70:80, 70:80] = True

    class T:  # the two truth masks the picture reads, as the phantom's Truth has them
        rim_mask, duct_mask = truth_rim, duct

    keep = WorstFrames(1)
    keep.run = "seed 0"
    keep.offer(0.9, 7, wl, found, T)
    keep.offer(0.5, 8, wl, found, T)
    keep.offer(0.7, 9, wl, found, T)
    (rec,) = keep.frames()
    assert rec["frame"] == 8
    img = picture(rec)
    assert img.shape == (H + LEGEND_H, W, 3)
    c = list(COLOURS.values())
    assert tuple(img[25, 25]) == c[0]  # truth only
    assert tuple(img[65, 65]) == c[1]  # found only
    assert tuple(img[50, 50]) == c[2]  # overlap
    assert tuple(img[75, 75]) == c[3]  # duct labelled rim
    assert tuple(img[150, 150]) == (50, 50, 50)  # dimmed WL elsewhere


def test_nonempty_dir_refused(tmp_path):
    (tmp_path / "x").write_text("")
    p = _run("--seeds", "31", "--size", f"{W}x{H}", "--frames", "1", "--report", str(tmp_path))
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "not empty" in p.stderr
    assert "Traceback" not in p.stderr
