"""`nirf-overlay record` never waits on the numba kernels, so it has no compile to report.

``process``, ``batch`` and ``bench`` compile (or load) the analysis kernels before their
first frame and say so in one progress line (``cli.common.prepare_kernels``).  ``record``
stores the raw pairs: with an empty numba cache it must not import numba at all (a kernel
reached from its path would compile in silence for a minute), and its cache stays empty.
If this fails because recording started to need a kernel, call ``prepare_kernels()`` in
``cli/record.py`` as the other commands do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RECORD = """
import json, sys
from nirf_overlay.cli import main
rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, "numba": "numba" in sys.modules}))
"""


def _record(tmp_path, *args):
    cache = tmp_path / "numba-cache"
    cache.mkdir(exist_ok=True)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache),
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-c", RECORD, "record", *args], capture_output=True,
                       text=True, env=env, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    said = json.loads(r.stdout.strip().splitlines()[-1])
    return said, list(cache.rglob("*")), r.stderr


def test_record_needs_no_kernel_from_files_or_the_phantom(tmp_path, image_sequence):
    rng = np.random.default_rng(2)
    wl = image_sequence(str(tmp_path / "wl"), [np.full((48, 64, 3), 80, np.uint8)] * 4, "png")
    nir = image_sequence(str(tmp_path / "nir"),
                         [rng.integers(100, 3000, (48, 64)).astype(np.uint16) for _ in range(4)],
                         "tiff")
    for name, args in (("files", ["--wl", wl, "--nir", nir]),
                       ("phantom", ["--phantom", "--size", "160x96", "--seconds", "0.5"])):
        out = tmp_path / f"session-{name}"
        said, cached, err = _record(tmp_path, *args, "--out", str(out), "--quiet")
        assert said == {"rc": 0, "numba": False}, (name, err)
        assert cached == [], (name, cached)  # nothing compiled into the empty cache
        assert (out / "session.json").is_file()
        assert "kernels" not in err, err
