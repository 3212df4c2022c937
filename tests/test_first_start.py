"""The first start as a new user meets it: a window at once, the overlay by itself later.

The real ``nirf-overlay`` command on a real X server (Xvfb) with an empty
numba cache: the window must be mapped within ``FIRST_WINDOW_S`` of the
command starting, while the kernels compile behind it, and the overlay must
come on by itself once they are ready (the title says "overlay not on yet"
until then; the stats say how many white-light frames were painted).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
XVFB, XDOTOOL = shutil.which("Xvfb"), shutil.which("xdotool")
#: seconds from the command's start to its window mapped (the issue's target)
FIRST_WINDOW_S = float(os.environ.get("NIRF_FIRST_WINDOW_S", "2.0"))

pytestmark = [
    pytest.mark.skipif(XVFB is None, reason="Xvfb is not installed (apt-get install xvfb; "
                                            ".ci/run installs it)"),
    pytest.mark.skipif(XDOTOOL is None, reason="xdotool is not installed (apt-get install "
                                               "xdotool; .ci/run installs it)"),
]


@pytest.fixture
def xserver():
    """A fresh Xvfb on a free display number (it picks one and tells it on a pipe)."""
    r, w = os.pipe()
    proc = subprocess.Popen([XVFB, "-displayfd", str(w), "-screen", "0", "1920x1080x24",
                             "-nolisten", "tcp"], pass_fds=(w,), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    os.close(w)
    with os.fdopen(r) as f:
        number = f.readline().strip()
    assert number.isdigit(), "Xvfb did not report its display"
    yield f":{number}"
    proc.terminate()
    proc.wait(10)


def _windows(env, pattern: str) -> list[str]:
    out = subprocess.run([XDOTOOL, "search", "--onlyvisible", "--name", pattern], env=env,
                         capture_output=True, text=True, timeout=10)
    return out.stdout.split()


def _title(env, wid: str) -> str:
    return subprocess.run([XDOTOOL, "getwindowname", wid], env=env, capture_output=True,
                          text=True, timeout=10).stdout.strip()


def _command() -> list[str]:
    exe = shutil.which("nirf-overlay")
    return [exe] if exe else [sys.executable, "-m", "nirf_overlay"]


def test_window_within_two_seconds_with_a_cold_cache_and_overlay_by_itself(xserver, tmp_path):
    # installed the way pip installs it: byte-compiled (pip compiles on install)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "nirf_overlay")],
                   check=True, capture_output=True)
    cache = tmp_path / "numba-cache"
    cache.mkdir()
    env = dict(os.environ, DISPLAY=xserver, QT_QPA_PLATFORM="xcb", NUMBA_CACHE_DIR=str(cache),
               PYTHONPATH=str(ROOT), XDG_CONFIG_HOME=str(tmp_path / "config"),
               HOME=str(tmp_path), XDG_RUNTIME_DIR=str(tmp_path))
    stats = tmp_path / "stats.json"
    t0 = time.monotonic()
    proc = subprocess.Popen([*_command(), "--exit-after", "900", "--stats-json", str(stats)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wid, mapped = None, None
        while time.monotonic() - t0 < 60 and proc.poll() is None:
            ids = _windows(env, "^nirf-overlay")
            if ids:
                wid, mapped = ids[0], time.monotonic() - t0
                break
            time.sleep(0.05)
        assert wid is not None, f"no window within 60 s: {proc.poll()}"
        assert "overlay not on yet" in _title(env, wid)  # the kernels compile behind it

        # the overlay comes on by itself once they are ready
        while time.monotonic() - t0 < 600 and proc.poll() is None:
            if "overlay not on yet" not in _title(env, wid):
                break
            time.sleep(0.5)
        ready = time.monotonic() - t0
        assert "overlay not on yet" not in _title(env, wid), "the overlay never came on"
        time.sleep(3.0)  # let it paint overlay frames
        # no window manager on Xvfb gives the window the keyboard: stop it as a
        # service manager would (the viewer closes in order on SIGTERM)
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 143, out
    result = json.loads(stats.read_text())
    assert result["white_light_frames"] > 0  # white light played while compiling
    assert result["overlay_on_after_s"] is not None and result["frames_displayed"] > 0
    assert result["overlay_on_after_s"] > result["first_frame_after_s"]
    assert list(cache.rglob("*.nbi")), "the kernels were compiled into the empty cache"
    print(f"window mapped after {mapped:.2f} s, overlay on after {ready:.0f} s")
    assert mapped < FIRST_WINDOW_S, f"window mapped after {mapped:.2f} s"
