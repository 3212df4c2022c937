"""Fault injection with real processes and real files: signals, earlier runs in --out,
frames without NIR, damaged inputs.  Each test names the fault class it walks; the
README's "Faults" table says what the user sees and what is kept."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from nirf_overlay.cli import main

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT), QT_QPA_PLATFORM="offscreen")
STOPS = [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]


def nirf(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nirf_overlay", *args], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def wait_for(predicate, proc, limit=240.0):
    """Poll until ``predicate()``; fail if ``proc`` ends first or time runs out."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if predicate():
            return
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"ended early ({proc.returncode}): {err}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("condition not met in time")


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def video_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return n


# -- every long command stops in order on SIGINT, SIGTERM, SIGHUP -------------------------------
@pytest.mark.parametrize("sig,code", STOPS, ids=[s.name for s, _ in STOPS])
def test_process_stopped_by_a_signal_keeps_rows_masks_and_video_frames_equal(tmp_path, sig, code):
    out = tmp_path / "out"
    # the bundled sample, looped: runs until stopped
    proc = nirf("process", "--loop", "--masks", "--no-progress", "--out", str(out))
    masks = out / "masks"
    wait_for(lambda: masks.is_dir() and len(os.listdir(masks)) >= 20, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"stopped by {sig.name}" in lines[0], err
    n = len(rows(out / "metrics.csv"))
    assert n >= 20
    assert len(os.listdir(masks)) == n
    assert video_frames(out / "overlay.mp4") == n


def test_record_stopped_by_sigterm_finalises_the_session(tmp_path):
    out = tmp_path / "session"
    proc = nirf("record", "--phantom", "--size", "96x64", "--quiet", "--out", str(out))
    wait_for(lambda: (out / "frames.csv").is_file()
             and (out / "frames.csv").read_text().count("\n") > 20, proc)
    proc.send_signal(signal.SIGTERM)
    stdout, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM" in stdout
    from nirf_overlay.recording import read_session

    session = read_session(str(out))
    assert session.frame_count == len(session.frames) >= 20


# -- outputs never mix runs ---------------------------------------------------------------------
@pytest.mark.parametrize("command", [
    ["process", "--phantom", "--size", "96x64", "--range", ":0.1", "--no-progress"],
    ["record", "--phantom", "--size", "96x64", "--seconds", "0.2", "--quiet"],
    ["batch", "nonexistent-session", "--workers", "1", "--no-progress"],
], ids=["process", "record", "batch"])
def test_an_out_directory_holding_an_earlier_run_is_refused_untouched(tmp_path, capsys, command):
    out = tmp_path / "out"
    out.mkdir()
    (out / "metrics.csv").write_text("an earlier run\n")
    rc = main([*command, "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert any(f"{out}: exists and is not empty" in line and "never mix" in line for line in err)
    assert os.listdir(out) == ["metrics.csv"]
    assert (out / "metrics.csv").read_text() == "an earlier run\n"
