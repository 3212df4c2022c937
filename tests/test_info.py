"""`nirf-overlay info` prints what a bug report needs, also where no window can open."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _info(env, *args):
    env = dict(env, PYTHONPATH=ROOT + os.pathsep + env.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "nirf_overlay", "info", *args],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)


def test_info_names_versions_cache_and_screens(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    r = _info(env, "--json")
    assert r.returncode == 0, r.stderr
    facts = json.loads(r.stdout)
    for key in ("nirf-overlay", "python", "numpy", "numba", "numba threading layer", "opencv",
                "opencv FFMPEG", "ffmpeg binary", "qt", "qt platform plugin", "screens", "cpus",
                "presets folder", "config folder"):
        assert facts[key], key
    assert facts["numba kernel cache"].startswith("cold: 0 of "), facts["numba kernel cache"]
    assert str(tmp_path / "cache") in facts["numba kernel cache"]
    assert facts["qt platform plugin"] == "offscreen"
    assert facts["ffmpeg binary"].startswith("ffmpeg version")


def test_info_without_a_screen_still_prints_everything_else():
    env = {k: v for k, v in os.environ.items()
           if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    r = _info(env)
    assert r.returncode == 0, r.stderr
    qt = [line for line in r.stdout.splitlines() if line.startswith("qt ")]
    assert qt and "cannot start a window here" in qt[0], r.stdout
    assert any(line.startswith("numba kernel cache") for line in r.stdout.splitlines())
