"""No kernel is compiled (or loaded) in the middle of a run.

The warm-up (:mod:`nirf_overlay.processing.warmup`) prepares every kernel for
the argument types a frame passes, before the first frame.  A kernel first
reached later with other types -- a tool near a rim, a duct touching it,
another frame size's grid, a crop that is not contiguous -- would be compiled
then: seconds with the GIL held (a frozen viewer, a stalled recording) when
numba's cache does not have it yet.  In a fresh process: warm up, then run the
real Pipeline over phantom recordings that reach the rarer paths, and list
each dispatcher that gained a signature.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = r"""
import sys
import numba
from nirf_overlay.processing import warmup
warmup.warm_up()
from nirf_overlay.phantom import Phantom, PhantomParams
from nirf_overlay.processing.pipeline import Pipeline

def dispatchers():
    out = {}
    for name, mod in list(sys.modules.items()):
        if name.startswith("nirf_overlay"):
            for k, v in vars(mod).items():
                if isinstance(v, numba.core.registry.CPUDispatcher):
                    out[f"{v.py_func.__module__}.{v.py_func.__name__}"] = v
    return out

before = {k: list(v.signatures) for k, v in dispatchers().items()}
cases = [
    dict(seed=3, size=(640, 360)),                                   # tool, duct, lesions
    dict(seed=11, size=(1280, 720), n_lesions=3),                    # another grid scale
    dict(seed=901, size=(640, 360), n_lesions=1, duct_touch="radial", duct_touch_tool=True),
    dict(seed=530, size=(640, 360), completeness=(0.4, 0.8), p_complete=0.0),
    dict(seed=724, size=(640, 360), tbr=(1.8, 3.0)),
]
for kw in cases:
    ph = Phantom(PhantomParams(**kw))
    for calibration in (ph.calibration(), None):
        pipe = Pipeline(calibration=calibration)
        for i in range(0, 60, 3):
            pipe.process(ph.frame(i))
for k, v in dispatchers().items():
    new = [s for s in v.signatures if s not in before.get(k, [])]
    if new:
        print("LAZY", k, new)
"""


def test_every_kernel_a_run_reaches_is_prepared_by_the_warm_up():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lazy = [ln for ln in proc.stdout.splitlines() if ln.startswith("LAZY")]
    assert not lazy, "\n".join(lazy)
