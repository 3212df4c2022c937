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
    assert "pipeline" in proc.stderr and "plain" in proc.stderr


def test_bench_refuses_bad_frames(capsys):
    from nirf_overlay.cli import main
    import pytest

    with pytest.raises(SystemExit) as e:
        main(["bench", "--frames", "0"])
    assert e.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err
