"""The refusals beyond calibration, walked through the command line a user types.

Each case is a real ``nirf-overlay`` invocation (``cli.main`` in this process,
its file descriptors captured, so OpenCV's and FFmpeg's own printing would show
too) with one mistake in it: a source (missing file, not a video, empty folder,
unknown URL scheme, absent device), a recording's or an output's folder, a
settings file (unknown section or key, wrong type, newer schema) or a batch (no
readable session, a scheduler address Dask cannot use).  Each must end with
exit code 2 and one line that names the input as the user gave it, says the
problem and the fix (an option to give, or "give ..."), and no traceback.
The calibration refusals have their own walk (test_calibration_refusals.py).
"""

import json
import re

import numpy as np
import pytest

from nirf_overlay.cli import main

FIX = re.compile(r"(^|[\s(])--[a-z][a-z-]+|\bgive\b")


def _files(d):
    """The inputs the cases name, written into ``d``."""
    junk = d / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    (d / "empty").mkdir()
    (d / "a_file").write_text("x")
    for name, doc in {"unknown_section.json": {"colour": {"alpha": 1}},
                      "unknown_key.json": {"levels": {"low_pct": 1}},
                      "wrong_type.json": {"levels": {"low_percentile": "low"}},
                      "newer.json": {"schema_version": 99, "levels": {}}}.items():
        (d / name).write_text(json.dumps(doc))


PHANTOM = ["--phantom", "--size", "96x64"]

#: id -> (argv with {d} for the case folder, the input the line must name, what it must say)
CASES = {
    "source-missing-file": (["process", "--wl", "{d}/gone.mp4", "--nir", "{d}/gone_nir.mkv"],
                            "{d}/gone.mp4", "no such file"),
    "source-not-a-video": (["process", "--wl", "{d}/junk.mp4", "--nir", "{d}/junk.mp4"],
                           "{d}/junk.mp4", "cannot open as video"),
    "source-empty-folder": (["process", "{d}/empty"], "{d}/empty", "not a recorded session"),
    "source-missing-folder": (["process", "{d}/nowhere"], "{d}/nowhere", "no such file or directory"),
    "source-pattern-matches-nothing": (["process", "--wl", "{d}/empty/%04d.png", "--nir",
                                        "{d}/empty/%04d.tiff"], "{d}/empty/%04d.png",
                                       "no files match the pattern"),
    "source-single-file": (["process", "{d}/junk.mp4"], "{d}/junk.mp4",
                           "a single file is not a source"),
    "source-url-scheme": (["process", "--wl", "foo://host/wl", "--nir", "foo://host/nir"],
                          "foo://host/wl", "is not a stream this can read"),
    "source-device": (["process", "--wl", "63", "--nir", "62"], "63",
                      "cannot open the video device"),
    "record-out-is-a-file": (["record", *PHANTOM, "--seconds", "0.1", "--out", "{d}/a_file"],
                             "{d}/a_file", "exists and is not a directory"),
    "record-out-unwritable": (["record", *PHANTOM, "--seconds", "0.1", "--out", "/proc/nirf-rec"],
                              "/proc/nirf-rec", "cannot create"),
    "record-compact-not-a-session": (["record", "--compact", "{d}/empty"], "{d}/empty",
                                     "not a recorded session"),
    "process-out-unwritable": (["process", *PHANTOM, "--out", "{d}/a_file/sub"],
                               "{d}/a_file/sub", "cannot create output directory"),
    "settings-unknown-section": (["process", *PHANTOM, "--settings", "{d}/unknown_section.json"],
                                 "{d}/unknown_section.json", "unknown section 'colour'"),
    "settings-unknown-key": (["process", *PHANTOM, "--settings", "{d}/unknown_key.json"],
                             "{d}/unknown_key.json", "levels.low_pct: no such setting"),
    "settings-wrong-type": (["process", *PHANTOM, "--settings", "{d}/wrong_type.json"],
                            "{d}/wrong_type.json", "'low' is not a number"),
    "settings-newer-schema": (["process", *PHANTOM, "--settings", "{d}/newer.json"],
                              "{d}/newer.json", "schema_version 99 is newer"),
    "settings-missing": (["process", *PHANTOM, "--settings", "{d}/none.json"],
                         "{d}/none.json", "no such settings file"),
    "batch-no-session": (["batch", "{d}/empty", "{d}/nowhere", "--out", "{d}/batch"],
                         "{d}/empty", "none of the 2 session(s) can be read"),
    "batch-scheduler-port": (["batch", "{d}/empty", "--out", "{d}/b2", "--scheduler", "host:port"],
                             "host:port", "not a Dask scheduler address"),
    "batch-scheduler-scheme": (["batch", "{d}/empty", "--out", "{d}/b3", "--scheduler",
                                "http://host:8786"], "http://host:8786", "unknown address scheme"),
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("walk")
    _files(d)
    return d


@pytest.mark.parametrize("case", list(CASES))
def test_refusal_is_one_line_naming_input_problem_and_fix(folder, capfd, case):
    argv, name, problem = CASES[case]
    argv = [a.replace("{d}", str(folder)) for a in argv]
    if argv[0] == "process":
        argv += ["--out", str(folder / f"out-{case}")] if "--out" not in argv else []
        argv.append("--no-progress")
    name = name.replace("{d}", str(folder))
    capfd.readouterr()
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's own refusals
        rc = e.code
    out, err = capfd.readouterr()
    assert rc == 2, (rc, err)
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("nirf-overlay: error: "), line
    assert name in line, f"does not name {name}: {line}"
    assert problem in line, line
    assert FIX.search(line.split(problem, 1)[1]), f"no fix after the problem: {line}"
