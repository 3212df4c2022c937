"""Frozen pipeline outputs: the guard that a refactoring changed nothing.

Runs ``nirf-overlay process`` (in a subprocess, through the command line, so
the check does not depend on any internal API) over a fixed set of inputs
and compares ``metrics.csv``, ``rims.csv`` and every rim mask with the copy
kept in this folder.  Masks are kept as the SHA-256 of their decoded pixels
(the PNG bytes depend on the zlib build, the pixels do not).

    python3 tests/frozen/freeze.py --check     # exit 1 and name what differs
    python3 tests/frozen/freeze.py --update    # after a change meant to alter results

A change that is *meant* to change results (a better segmentation, say)
updates the frozen copy in the same commit and says so in its message.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: name -> arguments to ``nirf-overlay process`` (the source and its options).
#: The bundled sample (FFV1 16-bit NIR + H.264 WL, calibration profile with
#: dark and flat, an auto-gain step), and phantoms with other seeds and sizes
#: (their own calibration, motion, instruments, ducts).
CASES = {
    "sample": [],
    "phantom_s3_640": ["--phantom", "--seed", "3", "--size", "640x360", "--range", ":1.5"],
    "phantom_s7_800": ["--phantom", "--seed", "7", "--size", "800x450", "--range", ":1.5"],
    "phantom_s21_960": ["--phantom", "--seed", "21", "--size", "960x540", "--range", "0.5:1.6"],
    # the transection-plane check on the sample's upper rim
    "sample_plane": ["--settings", str(HERE / "plane_settings.json")],
    # a recorded session (recorder, session format, replay source): the
    # placeholder is replaced by a session recorded from this phantom first
    "session_s5": ["{session}"],
}
#: cases whose source is a session recorded first with these ``record`` options
RECORD_FIRST = {
    "session_s5": ["--phantom", "--seed", "5", "--size", "640x360", "--seconds", "1.2",
                   "--quiet"],
}
FILES = ("metrics.csv", "rims.csv")


def _nirf(name: str, *args: str) -> None:
    cmd = [sys.executable, "-m", "nirf_overlay", *args]
    # a crash in a kernel then says where it happened
    env = dict(os.environ, PYTHONFAULTHANDLER="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{name}: {args[0]} failed ({proc.returncode}): {proc.stderr.strip()}")


def _run_case(name: str, out: Path) -> None:
    args = list(CASES[name])
    if name in RECORD_FIRST:
        session = out.parent / f"{out.name}-session"
        _nirf(name, "record", *RECORD_FIRST[name], "--out", str(session))
        args = [a.replace("{session}", str(session)) for a in args]
    _nirf(name, "process", *args, "--out", str(out), "--masks", "--no-video", "--no-progress")


def _mask_digests(out: Path) -> str:
    import cv2
    import numpy as np

    lines = []
    for png in sorted((out / "masks").glob("*.png")):
        mask = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
        h = hashlib.sha256(np.ascontiguousarray(mask).tobytes()).hexdigest()
        lines.append(f"{png.name} {mask.shape[1]}x{mask.shape[0]} {h}\n")
    return "".join(lines)


def outputs(name: str) -> dict:
    """{file name: text} of one case, freshly computed."""
    tmp = Path(tempfile.mkdtemp(prefix=f"frozen-{name}-"))
    try:
        _run_case(name, tmp / "out")
        texts = {f: (tmp / "out" / f).read_text() for f in FILES}
        texts["masks.sha256"] = _mask_digests(tmp / "out")
        return texts
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def differences(name: str) -> list[str]:
    """What differs between a fresh run of ``name`` and its frozen copy."""
    fresh = outputs(name)
    problems = []
    for fname, text in fresh.items():
        kept = HERE / name / fname
        if not kept.is_file():
            problems.append(f"{name}/{fname}: no frozen copy")
            continue
        old = kept.read_text().splitlines()
        new = text.splitlines()
        if old != new:
            bad = [i for i, (a, b) in enumerate(zip(old, new)) if a != b]
            where = f"line {bad[0] + 1}" if bad else f"{len(old)} vs {len(new)} lines"
            problems.append(f"{name}/{fname}: differs ({len(bad)} lines; first at {where})")
    return problems


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--check", action="store_true")
    g.add_argument("--update", action="store_true")
    p.add_argument("cases", nargs="*", help=f"default: all ({', '.join(CASES)})")
    args = p.parse_args(argv)
    names = args.cases or list(CASES)
    if args.update:
        for name in names:
            folder = HERE / name
            folder.mkdir(exist_ok=True)
            for fname, text in outputs(name).items():
                (folder / fname).write_text(text)
            print(f"{name}: frozen")
        return 0
    problems = [d for name in names for d in differences(name)]
    for line in problems:
        print(line)
    print("identical" if not problems else f"{len(problems)} difference(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
