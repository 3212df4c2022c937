"""Any install finds the bundled sample: a built wheel in a fresh venv, run from elsewhere.

The sample (``sample_videos/``) and its calibration (``calibration/sample/``)
sit at the top of the source tree; setup.py copies them into the package when
it builds (``nirf_overlay/bundled/``), so a wheel or ``pip install .`` has
them too.  A tree without them builds a wheel whose viewer shows the phantom
and says so, and whose commands refuse "no source" with the fix.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

PROBE = r"""
import json, sys
import nirf_overlay
from nirf_overlay.calibration import resolve_calibration
from nirf_overlay.cli import build_parser
from nirf_overlay.cli.view import _viewer_spec
from nirf_overlay.sources import open_source
from nirf_overlay.sources.sample import SAMPLE_DIR, sample_available

args = build_parser("view").parse_args(["view"])
spec, note = _viewer_spec(args)
out = {"package": nirf_overlay.__file__, "sample_dir": str(SAMPLE_DIR),
       "available": sample_available(), "phantom": bool(spec.phantom), "note": note}
if not spec.phantom:
    with open_source(spec) as src:
        pair = src.read()
        out["size"] = list(src.info.size)
        out["nir_bits"] = pair.nir_bits
        out["mm_per_px"] = resolve_calibration(None, src).calibration.mm_per_px
print(json.dumps(out))
"""


def _tree(dst: Path, *, sample: bool) -> Path:
    """A copy of the source tree as a clone has it (with or without the sample)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "bundled", "*.egg-info", "build")
    shutil.copytree(ROOT / "nirf_overlay", dst / "nirf_overlay", ignore=ignore)
    for name in ("setup.py", "setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dst / name)
    if sample:
        shutil.copytree(ROOT / "sample_videos", dst / "sample_videos")
        shutil.copytree(ROOT / "calibration" / "sample", dst / "calibration" / "sample")
    return dst


def _install_wheel(tree: Path, tmp: Path) -> Path:
    """Build a wheel of ``tree`` and install it into a fresh venv; return the venv's python."""
    wheels = tmp / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels), str(tree)], check=True, capture_output=True,
                   cwd=tmp)
    (wheel,) = wheels.glob("nirf_overlay-*.whl")
    env_dir = tmp / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps",
                    "--no-index", "-q", str(wheel)], check=True, capture_output=True, cwd=tmp)
    return py


def _clean_env(tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env.update(HOME=str(tmp), NUMBA_CACHE_DIR=str(tmp / "numba-cache"))
    return env


def test_a_wheel_in_a_fresh_venv_finds_the_sample_from_another_folder(tmp_path):
    tree = _tree(tmp_path / "src", sample=True)
    py = _install_wheel(tree, tmp_path)
    shutil.rmtree(tree)  # the install must not read the tree it was built from
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = subprocess.run([str(py), "-c", PROBE], cwd=elsewhere, env=_clean_env(tmp_path),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["package"].startswith(str(tmp_path / "venv")), out  # the wheel, not the tree
    assert out["available"] and not out["phantom"] and out["note"] == ""
    assert out["sample_dir"].startswith(str(tmp_path / "venv"))
    assert out["size"] == [640, 360] and out["nir_bits"] == 12
    assert out["mm_per_px"] == pytest.approx(0.1171875)  # calibration/sample/profile.json


def test_without_a_sample_the_viewer_shows_the_phantom_and_commands_name_the_fix(tmp_path):
    tree = _tree(tmp_path / "src", sample=False)
    py = _install_wheel(tree, tmp_path)
    shutil.rmtree(tree)
    env = _clean_env(tmp_path)
    run = subprocess.run([str(py), "-c", PROBE], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert not out["available"] and out["phantom"]
    assert "sample is not installed" in out["note"] and "phantom" in out["note"]
    proc = subprocess.run([str(py), "-m", "nirf_overlay", "process", "--out", str(tmp_path / "o")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip()
    assert "Traceback" not in line and len(line.splitlines()) == 1
    assert "bundled sample: not installed" in line and "--phantom" in line
