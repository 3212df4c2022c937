"""`nirf-overlay bench --json`: runs on a tiny phantom and reports the keys (no timing asserts)."""

import json
import signal
import subprocess
import sys
import time

import pytest


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


# -- figures as JSON, compared across versions (issue 16, deliverable 6) ---------------------------
def _bench(*args, **kw):
    return subprocess.run([sys.executable, "-m", "nirf_overlay", "bench", "--size", "96x64",
                           "--plain-frames", "1", *args], capture_output=True, text=True,
                          timeout=300, **kw)


def test_bench_json_out_has_traffic_reuse_and_provenance_and_compare_prints_ratios(tmp_path):
    old = tmp_path / "old.json"
    proc = _bench("--frames", "10", "--warmup", "2", "--no-live", "--json-out", str(old))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(old.read_text())
    for key in ("schema", "git", "nirf_overlay", "numpy", "numba", "opencv", "python", "cpu_count",
                "size", "every_frame_ms_median", "every_frame_stages", "traffic_bytes",
                "memcpy_floor_ms", "pixel_passes_to_floor", "reuse_on", "reuse_off",
                "reuse_analysis_ratio", "reuse_frame_ratio"):
        assert key in doc, key
    assert doc["size"] == [96, 64] and doc["cpu_count"] >= 1
    # the traffic is the arrays' sizes: 96 x 64 uint16 raw, float32 filtered read and written, ...
    px = 96 * 64
    assert doc["traffic_bytes"]["composite"] >= px * (3 + 4 + 3)
    # (the saturation mask only in rows that saturate: none may here)
    assert doc["traffic_bytes"]["normalise"] >= px * (2 + 4 + 4)
    assert doc["memcpy_floor_ms"] > 0 and doc["pixel_passes_to_floor"] > 0
    # the analysis's parts are timed, and the reuse run searched less often than every frame
    assert {"analysis.candidates", "analysis.refine"} <= set(doc["every_frame_stages"])
    assert doc["reuse_off"]["searched_fraction"] == 1.0
    assert doc["reuse_on"]["searched_fraction"] < 1.0
    assert isinstance(doc["reuse_on"]["resnapped_rims"], int)  # grown rims re-measured, counted apart
    assert doc["reuse_analysis_ratio"] == round(doc["reuse_on"]["analysis_ms_median"]
                                                / doc["reuse_off"]["analysis_ms_median"], 3)

    old_doc = dict(doc, every_frame_ms_median=doc["every_frame_ms_median"] * 2)
    old.write_text(json.dumps(old_doc))
    proc = _bench("--frames", "4", "--warmup", "1", "--no-live", "--no-reuse", "--json",
                  "--compare", str(old))
    assert proc.returncode == 0, proc.stderr
    new = json.loads(proc.stdout.strip().splitlines()[-1])
    line = next(x for x in proc.stderr.splitlines() if x.split()[:1] == ["every_frame_ms_median"])
    assert line.split()[-1] == f"{new['every_frame_ms_median'] / old_doc['every_frame_ms_median']:.3f}"
    assert "reuse_on" not in new  # --no-reuse: that run skipped


@pytest.mark.parametrize("content,problem", [
    (None, "no such file"), ("{not json", "not JSON"), ('{"ms_per_frame_median": 3}', "not a bench JSON"),
])
def test_compare_refuses_a_bad_file_with_one_line(tmp_path, capsys, content, problem):
    from nirf_overlay.cli import main

    path = tmp_path / "old.json"
    if content is not None:
        path.write_text(content)
    assert main(["bench", "--compare", str(path)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and problem in err[0], err
    assert "loading" not in captured.out  # refused before any frame is loaded


def test_json_out_into_a_missing_folder_is_refused_before_the_run(tmp_path, capsys):
    from nirf_overlay.cli import main

    assert main(["bench", "--json-out", str(tmp_path / "no" / "f.json")]) == 2
    captured = capsys.readouterr()
    assert "no such folder" in captured.err and "loading" not in captured.out


# -- stopped by a signal (issue 14): in order, what was measured, 128 + n --------------------------
STOPS = [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]


@pytest.mark.parametrize("sig,code", STOPS, ids=[s.name for s, _ in STOPS])
def test_bench_stopped_by_a_signal_reports_what_it_measured(tmp_path, sig, code):
    out = tmp_path / "stdout.txt"
    with open(out, "w") as f:
        # the live run, fed at 2 fps, takes 20 s: the signal lands in it
        proc = subprocess.Popen([sys.executable, "-m", "nirf_overlay", "bench", "--size", "96x64",
                                 "--frames", "40", "--warmup", "1", "--plain-frames", "1",
                                 "--rate", "2"], stdout=f, stderr=subprocess.PIPE, text=True)
        end = time.monotonic() + 240
        while "timing live" not in out.read_text():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < end, "the live run never started"
            time.sleep(0.1)
        time.sleep(1.0)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    text = out.read_text()
    assert "bench: stopped; measured so far:" in text
    assert "every frame analysed in turn: median" in text
    assert "live (display path)" not in text and "headline" not in text  # not finished
    assert f"stopped by {sig.name}" in err.strip().splitlines()[-1], err
