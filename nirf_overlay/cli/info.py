"""`nirf-overlay info`: what a bug report needs about this installation.

Versions of nirf-overlay and what it runs on, numba's threading and kernel cache,
OpenCV's video backends, the FFmpeg binary, the CPU, and what Qt sees: its platform,
screens and the config and presets folders (which Qt's standard paths decide).  Qt
is asked in a child process: on a machine with no screen a Qt application can abort
its process, and this command must still print the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys

#: seconds the Qt probe may take (loading the platform plugin, listing screens)
QT_PROBE_TIMEOUT_S = 20.0


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the facts as one JSON object")


def run(args) -> int:
    facts = collect()
    if args.json:
        print(json.dumps(facts, indent=2))
    else:
        width = max(len(k) for k in facts)
        for key, value in facts.items():
            print(f"{key:<{width}}  {value}")
    return 0


def collect() -> dict:
    """Every fact as ``name -> text``, in the order a reader wants them."""
    import cv2
    import numba
    import numpy as np

    from .. import __version__

    facts = {
        "nirf-overlay": f"{__version__} ({os.path.dirname(os.path.dirname(__file__))})",
        "python": f"{platform.python_version()} ({sys.executable})",
        "platform": platform.platform(),
        "cpus": _cpus(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "numba threading layer": f"{numba.config.THREADING_LAYER} (configured), "
                                 f"{numba.config.NUMBA_NUM_THREADS} threads",
        "numba kernel cache": _kernel_cache(),
        "opencv": cv2.__version__,
    }
    facts.update(_opencv_video())
    facts["ffmpeg binary"] = _ffmpeg()
    facts.update(_qt())
    return facts


def _cpus() -> str:
    from ..processing.frame_threads import usable_cores

    return f"{os.cpu_count()} ({usable_cores()} usable by this process)"


def _kernel_cache() -> str:
    """Where numba caches the compiled kernels, and whether they are there (warm)."""
    from ..processing.warmup import kernel_cache

    return kernel_cache().text()


def _opencv_video() -> dict:
    """The lines of OpenCV's build information that say how it reads video."""
    import cv2

    wanted = ("FFMPEG", "V4L/V4L2", "GStreamer")
    found = {}
    for line in cv2.getBuildInformation().splitlines():
        name, _, value = line.strip().partition(":")
        if name.strip() in wanted and value.strip():
            found[f"opencv {name.strip()}"] = value.strip()
    for name in wanted:
        found.setdefault(f"opencv {name}", "not listed in the build information")
    return found


def _ffmpeg() -> str:
    import imageio_ffmpeg

    try:
        exe = imageio_ffmpeg.get_ffmpeg_exe()
        out = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, text=True,
                             timeout=10).stdout.splitlines()
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        return f"not usable ({e})"
    return f"{out[0] if out else 'no version printed'} ({exe})"


def _qt() -> dict:
    try:
        r = subprocess.run([sys.executable, "-m", "nirf_overlay.gui.probe"], capture_output=True,
                           text=True, timeout=QT_PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"qt": f"no answer within {QT_PROBE_TIMEOUT_S:g} s"}
    if r.returncode != 0:
        reason = (r.stderr.strip().splitlines() or [f"exit code {r.returncode}"])[-1]
        return {"qt": f"cannot start a window here ({reason}); set QT_QPA_PLATFORM=offscreen "
                      "to check the rest"}
    q = json.loads(r.stdout)
    return {"qt": f"{q['qt']} (bindings {q['pyqt']})", "qt platform plugin": q["platform"],
            "screens": ", ".join(q["screens"]) or "none", "config folder": q["config"],
            "presets folder": q["presets"]}
