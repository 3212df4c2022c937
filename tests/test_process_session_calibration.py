"""`process SESSION` replays with the calibration recorded in the session."""

import csv

from nirf_overlay.cli import main
from nirf_overlay.phantom import PhantomParams
from nirf_overlay.recording import Recorder
from nirf_overlay.settings import Settings
from nirf_overlay.sources.phantom_source import PhantomSource


def test_process_session_uses_recorded_calibration(tmp_path):
    src = PhantomSource(PhantomParams(seed=2, size=(320, 180)), frames=6)
    cal = src.phantom.calibration()
    rec = Recorder(str(tmp_path / "s"), src.info, Settings(), cal,
                   min_free_bytes=0, stop_free_bytes=0, compact=False)
    with src:
        for pair in src:
            assert rec.submit(pair, block=True)
    rec.stop()
    out = tmp_path / "out"
    assert main(["process", str(tmp_path / "s"), "--out", str(out), "--no-video",
                 "--no-progress"]) == 0
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert len(rows) == 6
    # millimetres are only known from the recorded calibration's mm_per_px
    assert any(r["rim_thickness_mm"] for r in rows)
    mm = [float(r["rim_thickness_mm"]) for r in rows if r["rim_thickness_mm"]]
    assert all(0.5 < v < 4.0 for v in mm)
