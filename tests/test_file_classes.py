"""Every file a user gives, walked through every class of fault a real study meets.

A user file can be empty, not text (binary garbage), cut anywhere, from a newer version
(a schema higher than this nirf-overlay knows) or a directory where a file is expected.
For each kind of file the real command that reads it runs on it (``process`` on the
bundled sample for the pipeline's inputs, ``process`` on a recorded session for its side
files, ``batch`` for the TLS files) and must end as the README's "Faults" table says:

- a file the user names: one line naming the file and the problem, exit 2, no traceback;
- a side file of a session (settings, calibration, tables): a warning naming the file and
  the rest of the session processed (``session.json`` itself, without which nothing of the
  session can be read, is refused in one line).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nirf_overlay.cli import main

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_CAL = ROOT / "calibration" / "sample"
GARBAGE = bytes(range(256)) * 3 + b"\x00\xff\xfe not text \x89PNG\x00"

# the classes of fault
EMPTY, BINARY, CUT, NEWER, DIRECTORY = "empty", "binary", "cut", "newer", "directory"
ALL = (EMPTY, BINARY, CUT, NEWER, DIRECTORY)
NO_SCHEMA = (EMPTY, BINARY, CUT, DIRECTORY)  # files without a schema version


def spoil(path: Path, fault: str) -> None:
    """Turn the good file ``path`` into one of the fault class ``fault``."""
    good = path.read_bytes()
    if fault == EMPTY:
        path.write_bytes(b"")
    elif fault == BINARY:
        path.write_bytes(GARBAGE)
    elif fault == CUT:  # cut in the middle: half a JSON object, half a row, half a strip
        content = good.rstrip()  # (session.json is padded with blanks to a fixed size)
        path.write_bytes(content[: len(content) // 2 + 1])
    elif fault == NEWER:
        data = json.loads(good)
        data["schema_version"] = 99
        path.write_text(json.dumps(data))
    elif fault == DIRECTORY:
        path.unlink()
        path.mkdir()
        (path / "inside.txt").write_text("a directory where a file is expected\n")
    else:
        raise AssertionError(fault)


def _sample_calibration(tmp: Path) -> Path:
    folder = tmp / "cal"
    shutil.copytree(SAMPLE_CAL, folder)
    return folder


def _with_hot_pixels(tmp: Path) -> Path:
    """The sample's profile naming a hot-pixel map (8-bit PNG) beside it; returns the PNG."""
    import cv2
    import numpy as np

    folder = _sample_calibration(tmp)
    mask = np.zeros((360, 640), np.uint8)
    mask[10, 20] = 255
    assert cv2.imwrite(str(folder / "hot_pixels.png"), mask)
    doc = json.loads((folder / "profile.json").read_text())
    doc["hot_pixels"] = "hot_pixels.png"
    (folder / "profile.json").write_text(json.dumps(doc))
    return folder / "hot_pixels.png"


def _settings(tmp: Path) -> Path:
    from nirf_overlay.settings import Settings

    path = tmp / "mine.json"
    Settings().save(path)
    return path


def _lut(tmp: Path) -> Path:
    path = tmp / "curve.csv"
    path.write_text("display,linear\n" + "".join(f"{i / 16:.4f},{(i / 16) ** 2.2:.6f}\n"
                                                  for i in range(17)))
    return path


# kind -> (make the good file in tmp: returns (path of the file to spoil, options that name
#          it), the fault classes that apply)
USER_FILES = {
    "settings": (lambda t: (p := _settings(t), ["--settings", str(p)]), ALL),
    "calibration profile": (lambda t: (p := _sample_calibration(t) / "profile.json",
                                       ["--calibration", str(p)]), ALL),
    "profile's dark TIFF": (lambda t: (_sample_calibration(t) / "dark.tiff",
                                       ["--calibration", str(t / "cal" / "profile.json")]),
                            NO_SCHEMA),
    "profile's flat TIFF": (lambda t: (_sample_calibration(t) / "flat.tiff",
                                       ["--calibration", str(t / "cal" / "profile.json")]),
                            NO_SCHEMA),
    "profile's hot-pixel PNG": (lambda t: (_with_hot_pixels(t),
                                           ["--calibration", str(t / "cal" / "profile.json")]),
                                NO_SCHEMA),
    "--dark TIFF": (lambda t: (p := _sample_calibration(t) / "dark.tiff", ["--dark", str(p)]),
                    NO_SCHEMA),
    "--flat TIFF": (lambda t: (p := _sample_calibration(t) / "flat.tiff", ["--flat", str(p)]),
                    NO_SCHEMA),
    "transfer LUT CSV": (lambda t: (p := _lut(t), ["--nir-transfer", f"lut:{p}"]), NO_SCHEMA),
}

CASES = [(kind, fault) for kind, (_, faults) in USER_FILES.items() for fault in faults]


def _one_line_refusal(capsys, rc, path: Path) -> str:
    """The run ended with exit 2 and one error line that names ``path``'s file."""
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert rc == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("nirf-overlay: error: "), captured.err
    assert path.name in lines[0], lines[0]
    assert "Traceback" not in captured.err
    return lines[0]


@pytest.mark.parametrize("kind,fault", CASES, ids=[f"{k}-{f}" for k, f in CASES])
def test_a_damaged_user_file_is_refused_in_one_line_naming_it(tmp_path, capsys, kind, fault):
    make, _ = USER_FILES[kind]
    path, options = make(tmp_path)
    spoil(path, fault)
    out = tmp_path / "out"
    rc = main(["process", *options, "--out", str(out), "--no-video", "--no-progress"])
    _one_line_refusal(capsys, rc, path)
    assert not out.exists(), "refused before anything is written"


def _numeric_settings():
    from nirf_overlay.settings import Settings

    return [(section, name, value) for section, fields in Settings().to_dict().items()
            if isinstance(fields, dict) for name, value in fields.items()
            if isinstance(value, (int, float, list)) and not isinstance(value, bool)]


NUMERIC_SETTINGS = [(f"{sec}.{name}", bad) for sec, name, value in _numeric_settings()
                    for bad in (([float("nan")] * 4, [[float("nan"), 1.0]] * 3)
                                if isinstance(value, list) else (float("nan"), float("inf")))]


@pytest.mark.parametrize("field,bad", NUMERIC_SETTINGS,
                         ids=[f"{f}={b!r}" for f, b in NUMERIC_SETTINGS])
def test_a_settings_file_with_nan_or_inf_for_a_number_is_refused_naming_the_field(
        tmp_path, capsys, field, bad):
    """JSON as Python writes it takes NaN and Infinity: every number of the settings
    (walked from the model) refuses them in one line (an int field raised ValueError)."""
    path = _settings(tmp_path)
    doc = json.loads(path.read_text())
    section, name = field.split(".")
    doc[section][name] = bad
    path.write_text(json.dumps(doc))
    rc = main(["process", "--settings", str(path), "--out", str(tmp_path / "out"),
               "--no-video", "--no-progress"])
    line = _one_line_refusal(capsys, rc, path)
    assert field in line, line


@pytest.mark.parametrize("fault", ALL)
def test_a_damaged_preset_is_refused_in_one_line_naming_it(tmp_path, fault):
    pytest.importorskip("PyQt5")
    from nirf_overlay.errors import SettingsError
    from nirf_overlay.gui.presets import list_presets, load_preset

    path = _settings(tmp_path)
    path.rename(tmp_path / "Liver.json")
    path = tmp_path / "Liver.json"
    spoil(path, fault)
    if fault == DIRECTORY:  # a folder named like a preset is not listed as one
        assert "Liver" not in list_presets(tmp_path)
    with pytest.raises(SettingsError) as e:
        load_preset(tmp_path, "Liver")
    message = str(e.value)
    assert "\n" not in message and "Liver.json" in message, message


# -- video files: refused when nothing is readable, read up to the damage when cut ---------------
@pytest.mark.parametrize("fault", NO_SCHEMA)
@pytest.mark.parametrize("channel", ["--wl", "--nir"])
def test_a_damaged_video_file_is_refused_in_one_line_or_read_up_to_the_cut(
        tmp_path, capsys, channel, fault):
    files = {}
    for option, name in (("--wl", "sample_wl.mp4"), ("--nir", "sample_nir.mkv")):
        files[option] = tmp_path / name
        shutil.copy(ROOT / "sample_videos" / name, files[option])
    spoil(files[channel], fault)
    out = tmp_path / "out"
    rc = main(["process", "--wl", str(files["--wl"]), "--nir", str(files["--nir"]),
               "--out", str(out), "--no-video", "--no-progress"])
    if fault != CUT:
        _one_line_refusal(capsys, rc, files[channel])
        assert not out.exists()
        return
    err = capsys.readouterr().err
    assert rc == 0, err
    assert any(line.startswith("nirf-overlay: warning: ") and files[channel].name in line
               and "truncated" in line for line in err.splitlines()), err
    assert 0 < len((out / "metrics.csv").read_text().splitlines()[1:]) < 90  # of 90 frames


@pytest.mark.parametrize("fault", NO_SCHEMA)
def test_a_damaged_image_in_a_sequence_ends_it_there_with_a_warning(tmp_path, capsys,
                                                                    image_sequence, fault):
    import numpy as np

    wl = image_sequence(tmp_path / "wl", [np.full((64, 96, 3), 90, np.uint8)] * 10, "png")
    nir = image_sequence(tmp_path / "nir", [np.full((64, 96), 900, np.uint16)] * 10, "png")
    bad = tmp_path / "nir" / "0005.png"
    spoil(bad, fault)
    rc = main(["process", "--wl", wl, "--nir", nir, "--out", str(tmp_path / "out"),
               "--no-video", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 0 and "Traceback" not in err, err
    assert any(line.startswith("nirf-overlay: warning: ") and bad.name in line
               for line in err.splitlines()), err
    assert len((tmp_path / "out" / "metrics.csv").read_text().splitlines()[1:]) == 5


# -- TLS files of batch --------------------------------------------------------------------------
TLS_OPTIONS = ("--tls-ca-file", "--tls-cert", "--tls-key")


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    from test_batch_cluster import _make_certificates  # the suite's one certificate maker

    return _make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.mark.parametrize("fault", NO_SCHEMA)
@pytest.mark.parametrize("option", TLS_OPTIONS)
def test_a_damaged_tls_file_is_refused_in_one_line_naming_it(tmp_path, capsys, certificates,
                                                             option, fault):
    files = {}
    for opt, good in zip(TLS_OPTIONS, certificates):
        files[opt] = tmp_path / Path(good).name
        shutil.copy(good, files[opt])
    spoil(files[option], fault)
    tls = [a for opt, path in files.items() for a in (opt, str(path))]
    # nothing listens there: a file that cannot be used must be refused before connecting
    rc = main(["batch", "no-such-session", "--out", str(tmp_path / "out"), "--scheduler",
               "tls://127.0.0.1:9", *tls, "--no-progress"])
    line = _one_line_refusal(capsys, rc, files[option])
    assert option in line, line


# -- the side files of a recorded session: reported, and the session still processed ---------------
FRAMES = 40


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A 40-frame phantom session with its calibration (three 0.5 s segments, two markers)."""
    from nirf_overlay.calibration import resolve_calibration
    from nirf_overlay.recording import Recorder
    from nirf_overlay.settings import Settings
    from nirf_overlay.sources import SourceSpec, open_source

    path = tmp_path_factory.mktemp("sessions") / "S1"
    with open_source(SourceSpec(phantom=True, size=(96, 64), options={"frames": FRAMES})) as src:
        cal = resolve_calibration(None, src).calibration
        rec = Recorder(path, src.info, Settings(), cal, min_free_bytes=0, segment_seconds=0.5)
        for pair in src:
            assert rec.submit(pair, block=True)
        rec.log_event("marker", label="a")
        rec.log_event("marker", label="b")
        rec.stop()
    assert (path / "calibration" / "profile.json").is_file()
    return path


SIDE_FILES = {
    "settings.json": ALL,
    "calibration/profile.json": ALL,
    "events.jsonl": NO_SCHEMA,
    "frames.csv": NO_SCHEMA,  # the rows lost: rebuilt from the segments, timed by fps
    "segments.csv": NO_SCHEMA,  # the rows lost: rebuilt from frames.csv and the files
}
SIDE_CASES = [(name, fault) for name, faults in SIDE_FILES.items() for fault in faults]


def _process_spoiled(tmp_path, recorded, name, fault):
    """``process`` on a copy of the recorded session with its file ``name`` spoiled:
    (exit code, the session, the output directory)."""
    session = tmp_path / "S1"
    shutil.copytree(recorded, session)
    spoil(session / name, fault)
    out = tmp_path / "out"
    rc = main(["process", str(session), "--out", str(out), "--no-video", "--no-progress"])
    return rc, session, out


@pytest.mark.parametrize("name,fault", SIDE_CASES, ids=[f"{n}-{f}" for n, f in SIDE_CASES])
def test_a_damaged_session_side_file_is_reported_and_the_session_processed(
        tmp_path, capsys, recorded, name, fault):
    rc, session, out = _process_spoiled(tmp_path, recorded, name, fault)
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "Traceback" not in captured.err
    warned = [line for line in captured.err.splitlines()
              if line.startswith("nirf-overlay: warning: ") and Path(name).name in line]
    assert warned, captured.err
    # every frame: what the damaged table lost is known from the other table and the files
    assert len((out / "metrics.csv").read_text().splitlines()[1:]) == FRAMES


@pytest.mark.parametrize("fault", ALL)
def test_a_session_without_its_description_is_refused_in_one_line(tmp_path, capsys, recorded,
                                                                  fault):
    rc, session, out = _process_spoiled(tmp_path, recorded, "session.json", fault)
    _one_line_refusal(capsys, rc, session / "session.json")
    assert not out.exists()


def test_a_session_with_both_tables_unreadable_is_refused_in_one_line(tmp_path, capsys,
                                                                     recorded):
    first = tmp_path / "frames-spoiled" / "S1"
    shutil.copytree(recorded, first)
    spoil(first / "frames.csv", EMPTY)
    rc, session, out = _process_spoiled(tmp_path, first, "segments.csv", BINARY)
    _one_line_refusal(capsys, rc, session / "segments.csv")


# -- an output file the user names: checked before the work ----------------------------------------
def _under_a_file(tmp: Path) -> Path:
    (tmp / "notes.txt").write_text("a file where the profile's folder would be made\n")
    return tmp / "notes.txt" / "sys1" / "p.json"


# (a missing folder is made when the profile is saved: profiles are folders of their own)
OUT_FAULTS = {
    "an existing directory": (lambda t: (t / "cal").mkdir() or t / "cal", "is a directory"),
    "a folder that cannot be made": (_under_a_file, "is a file, not a folder"),
}


@pytest.mark.parametrize("fault", list(OUT_FAULTS))
@pytest.mark.parametrize("step", ["dark", "flat", "register", "layout"])
def test_calibrate_refuses_an_out_it_cannot_write_before_reading_any_frame(tmp_path, capsys,
                                                                          step, fault):
    make, problem = OUT_FAULTS[fault]
    out = make(tmp_path)
    missing = str(tmp_path / "not-there.mkv")  # the source: refused only if it were read first
    source = ["--combined", missing] if step == "layout" else ["--nir", missing, "--wl", missing]
    rc = main(["calibrate", step, *source, "--out", str(out)])
    line = _one_line_refusal(capsys, rc, out)
    assert line.startswith(f"nirf-overlay: error: --out {out}: ") and problem in line, line
    if fault == "an existing directory":
        assert list(out.iterdir()) == []


@pytest.mark.parametrize("fault", (EMPTY, BINARY, CUT, NEWER))
def test_calibrate_refuses_to_update_a_damaged_profile_and_leaves_it(tmp_path, capsys, fault):
    """``--out`` names a profile to update (its other entries kept): a damaged one is
    refused in one line, never replaced by a profile that silently lost its entries."""
    profile = _sample_calibration(tmp_path) / "profile.json"
    spoil(profile, fault)
    damaged = profile.read_bytes()
    rc = main(["calibrate", "dark", "--nir", str(ROOT / "sample_videos" / "sample_nir.mkv"),
               "--frames", "2", "--out", str(profile)])
    _one_line_refusal(capsys, rc, profile)
    assert profile.read_bytes() == damaged


def test_calibrate_layout_refuses_a_preview_it_cannot_write_before_reading_any_frame(
        tmp_path, capsys):
    preview = _under_a_file(tmp_path).with_name("preview.png")
    rc = main(["calibrate", "layout", "--combined", str(tmp_path / "not-there.mkv"),
               "--out", str(tmp_path / "p.json"), "--preview", str(preview)])
    line = _one_line_refusal(capsys, rc, preview)
    assert "--preview" in line and "is a file, not a folder" in line, line
