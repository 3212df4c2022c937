"""`batch --nir-transfer` on a real Dask LocalCluster, on a small phantom tower recording.

The tower's H.264 output (8-bit, display-encoded NIR) is recorded into a
session through its layout, as a user records a tower; batch then measures it
with the transfer that undoes the tower's curve (the LUT the phantom writes)
and without one.  With it the workers measure what ``process --nir-transfer``
measures, cell for cell, and every output says ``linear``; without it every
output says the ratios are of display values.
"""

import csv
import os

import pytest

from nirf_overlay.cli import main
from nirf_overlay.cli.make_sample import make_tower_recording
from nirf_overlay.phantom import PhantomParams
from nirf_overlay.phantom.tower import Tower, TowerParams


@pytest.fixture(scope="module")
def tower_session(tmp_path_factory):
    d = tmp_path_factory.mktemp("batch_tower")
    tower = Tower(TowerParams(layout="side-by-side", size=(640, 360), curve="gamma:2.4", seed=61),
                  PhantomParams(seed=62, fps=15.0))
    s = make_tower_recording(tower, str(d), name="t", frames=40, crf=18, truth=False,
                             progress=False)
    wl, nir = (",".join(str(v) for v in tower.rects[k]) for k in ("wl", "nir"))
    session = str(d / "tower_case")
    assert main(["record", "--combined", s["combined"], "--layout", "custom", "--wl-rect", wl,
                 "--nir-rect", nir, "--out", session, "--quiet"]) == 0
    return session, s["transfer"]


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _batch(session, out, *extra):
    return main(["batch", session, "--out", out, "--workers", "1", "--chunk-frames", "25",
                 "--no-progress", *extra])


def test_batch_nir_transfer_measures_signal_as_process_does(tower_session, tmp_path, capsys):
    session, lut = tower_session
    out = str(tmp_path / "lin")
    assert _batch(session, out, "--nir-transfer", f"lut:{lut}") == 0
    err = capsys.readouterr().err
    assert "display values" not in err and "--nir-transfer" not in err
    summary = _rows(os.path.join(out, "summary.csv"))
    assert [s["nir_signal"] for s in summary] == ["linear"] and summary[0]["error"] == ""
    assert float(summary[0]["median_tbr"]) > 0
    assert "Ratios of display values" not in open(os.path.join(out, "report.html")).read()

    # the workers applied the very transfer process applies: the same rows, cell for cell
    seq = str(tmp_path / "seq")
    assert main(["process", session, "--out", seq, "--nir-transfer", f"lut:{lut}", "--no-video",
                 "--no-progress"]) == 0
    batch_rows = _rows(os.path.join(out, "tower_case", "metrics.csv"))
    assert batch_rows == _rows(os.path.join(seq, "metrics.csv"))
    assert {r["nir_signal"] for r in batch_rows} == {"linear"}

    # without the transfer: display values, said in the summary, the report and on stderr
    disp = str(tmp_path / "disp")
    assert _batch(session, disp) == 0
    err = capsys.readouterr().err
    assert "display values" in err and "--nir-transfer" in err
    summary_d = _rows(os.path.join(disp, "summary.csv"))
    assert summary_d[0]["nir_signal"] == "display"
    assert "Ratios of display values" in open(os.path.join(disp, "report.html")).read()
    # a gamma of 2.4 compresses the ratio of display values well below the signal's
    assert float(summary_d[0]["median_tbr"]) < 0.8 * float(summary[0]["median_tbr"])


def test_a_bad_transfer_is_one_line_before_any_worker(tower_session, tmp_path, capsys):
    session, _ = tower_session
    out = str(tmp_path / "bad")
    assert _batch(session, out, "--nir-transfer", "gamma:99") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--nir-transfer" in err[0] and "gamma 99" in err[0], err
    assert not os.path.exists(out)
