"""The stop-signal rule (nirf_overlay.shutdown) in a real process with real signals."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# numba compiles fresh functions in the main thread (its own Python code running
# most of the time) while a timer thread sends SIGTERM to the process
SCRIPT = textwrap.dedent("""
    import os, signal, sys, threading, traceback
    import numba
    from nirf_overlay import shutdown

    shutdown.install()
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
    compiled = 0
    try:
        for i in range(400):
            ns = {}
            exec(f"def f(x):\\n    return x * {i} + {i}", ns)
            numba.njit(ns["f"])(1.0)
            compiled += 1
    except shutdown.Stopped as e:
        # the frame the handler ran in (the handler's own frame is the last)
        inner = [f for f in traceback.extract_tb(e.__traceback__)
                 if not f.filename.endswith("shutdown.py")][-1]
        print(e.name, compiled, inner.filename)
        sys.exit(e.exit_code)
    print("not stopped", compiled)
""")


def test_a_signal_while_numba_runs_is_raised_after_it_returns():
    """A signal is never raised inside numba's Python code (where C code above it would
    turn it into a SystemError): it is held and raised in the caller's code once numba
    returns, with the same exit code."""
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 143, proc.stderr
    name, compiled, where = proc.stdout.split()
    assert name == "SIGTERM"
    assert int(compiled) < 400  # stopped early, not at the end
    assert "numba" not in where and "llvmlite" not in where, where
    assert where == "<string>"  # the script's own loop
