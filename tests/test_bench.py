"""`nirf-overlay bench --json`: runs on a tiny phantom and reports the keys (no timing asserts)."""

import json
import subprocess
import sys


def test_bench_json_last_line_has_the_keys():
    proc = subprocess.run(
        [sys.executable, "-m", "nirf_overlay", "bench", "--size", "96x64", "--frames", "4",
         "--plain-frames", "2", "--warmup", "2", "--json"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    res = json.loads(last)
    for key in ("ms_per_frame_median", "ms_per_frame_p99", "fps", "size", "stages",
                "plain_ms_per_frame_median", "speedup"):
        assert key in res
    assert res["size"] == [96, 64] and res["frames"] == 4 and res["plain_frames"] == 2
    assert {"normalise", "levels", "analysis", "composite"} <= set(res["stages"])
    assert res["ms_per_frame_median"] > 0 and res["plain_ms_per_frame_median"] > 0
    assert "every frame analysed" in proc.stderr and "plain" in proc.stderr
    # the headline is the live viewer's way, fed at 60 fps (the phantom up to 1080p)
    assert res["mode"] == "live" and res["live_rate_fps"] == 60.0
    assert res["ms_per_frame_median"] == res["live_ms_median"]
    assert res["every_frame_ms_median"] > 0 and "analysis" in res["every_frame_stages"]
    assert 0.0 <= res["live_analysed_fraction"] <= 1.0
    assert 0.0 <= res["live_late_fraction"] <= 1.0


def test_bench_every_frame_headline_without_live_run():
    proc = subprocess.run(
        [sys.executable, "-m", "nirf_overlay", "bench", "--size", "96x64", "--frames", "3",
         "--plain-frames", "1", "--warmup", "1", "--every-frame", "--no-live", "--json"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["mode"] == "every-frame"
    assert res["ms_per_frame_median"] == res["every_frame_ms_median"]
    assert not any(k.startswith("live_") for k in res)
    assert "live, as the viewer" not in proc.stderr


def test_bench_refuses_bad_frames(capsys):
    from nirf_overlay.cli import main
    import pytest

    with pytest.raises(SystemExit) as e:
        main(["bench", "--frames", "0"])
    assert e.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err


def test_bench_refuses_bad_rate(capsys):
    from nirf_overlay.cli import main
    import pytest

    with pytest.raises(SystemExit) as e:
        main(["bench", "--rate", "-5"])
    assert e.value.code == 2
    assert "must be a positive number" in capsys.readouterr().err
