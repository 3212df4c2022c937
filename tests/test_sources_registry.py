"""The source registry: every kind recognised and described, one decision point, lazy loading."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from nirf_overlay.cli.source_args import add_source_arguments, has_source, spec_from_args
from nirf_overlay.errors import SourceError
from nirf_overlay.sources import (
    KINDS,
    SAMPLE_PROFILE,
    SAMPLE_WL,
    SourceKind,
    SourceSpec,
    check_spec,
    default_sample,
    kind_of,
    open_source,
)

W, H = 64, 48


@pytest.fixture(scope="module")
def session_dir(tmp_path_factory):
    """A real recorded session: three phantom pairs through the recorder."""
    from nirf_overlay.recording import Recorder

    out = tmp_path_factory.mktemp("session") / "s"
    with open_source(SourceSpec(phantom=True, size=(W, H), seed=4, options={"frames": 3})) as src:
        rec = Recorder(out, src.info, min_free_bytes=0)
        for pair in src:
            assert rec.submit(pair, block=True)
        assert not rec.stop(wait_compaction=True).error
    return str(out)


@pytest.fixture
def sequences(tmp_path, image_sequence):
    """Two image sequences (WL colour, NIR 16-bit): a pair with no calibration of its own."""
    rng = np.random.default_rng(3)
    wl = image_sequence(tmp_path / "wl", [rng.integers(0, 255, (H, W, 3), np.uint8)] * 2, "png")
    nir = image_sequence(tmp_path / "nir", [rng.integers(0, 4095, (H, W), np.uint16)] * 2, "tiff")
    return wl, nir


# -- recognising and describing -------------------------------------------------------------
CASES = [
    (SourceSpec(phantom=True, seed=3), "phantom", "phantom(seed=3)"),
    (SourceSpec(combined="both.mkv"), "combined", "combined both.mkv"),
    (SourceSpec(combined="2", layout="top-bottom"), "combined", "combined 2"),
    (SourceSpec(wl="wl.mp4", nir="nir.mkv"), "pair", "WL wl.mp4 + NIR nir.mkv"),
    (SourceSpec(wl="wl/%04d.png", nir="nir/%06d.tiff"), "pair",  # file names, not folders
     "WL %04d.png + NIR %06d.tiff"),
    (SourceSpec(wl="wl/%04d.png", nir="nir/%06d.tiff", keep_paths=True), "pair",
     "WL wl/%04d.png + NIR nir/%06d.tiff"),
    (SourceSpec(wl="0", nir="/dev/video1"), "pair", "WL 0 + NIR /dev/video1"),
    (SourceSpec(wl="rtsp://h/wl", nir="udp://@:5000"), "pair", "WL rtsp://h/wl + NIR udp://@:5000"),
    (SourceSpec(session="cases/01"), "session", "01"),
    (SourceSpec(wl="rtsp://u:pw@h/wl", nir="udp://@:5000"), "pair",  # never a password
     "WL rtsp://u:***@h/wl + NIR udp://@:5000"),
    (SourceSpec(), "sample", "bundled sample"),
]


@pytest.mark.parametrize("spec,name,text", CASES)
def test_every_kind_is_recognised_and_described(spec, name, text):
    assert kind_of(spec).name == name
    assert spec.describe() == text


def test_the_cases_cover_every_kind_in_the_registry():
    assert {name for _, name, _ in CASES} == {kind.name for kind in KINDS}
    assert len({kind.name for kind in KINDS}) == len(KINDS)
    for kind in KINDS:  # every loader names a module and a callable in it
        module, _, attribute = kind.loader.partition(":")
        assert module.startswith("nirf_overlay.") and attribute


# -- what is refused before opening ------------------------------------------------------------
ONE_OF = "source: give only one of a session directory, --wl/--nir, --combined or --phantom"
INPUTS = {"session": dict(session="s"), "pair": dict(wl="a.mp4", nir="b.mkv"),
          "combined": dict(combined="c.mkv"), "phantom": dict(phantom=True)}


@pytest.mark.parametrize("first,second", [(a, b) for a in INPUTS for b in INPUTS if a < b])
def test_two_kinds_given_is_refused(first, second):
    spec = SourceSpec(**INPUTS[first], **INPUTS[second])
    for call in (check_spec, open_source):
        with pytest.raises(SourceError) as e:
            call(spec)
        assert str(e.value) == ONE_OF


def test_refusals_before_opening_are_the_same_for_the_dialog_and_open_source(tmp_path):
    plain_dir = tmp_path / "plain"
    plain_dir.mkdir()
    a_file = tmp_path / "a.mkv"
    a_file.write_bytes(b"\0")
    missing = tmp_path / "gone"
    cases = [
        (SourceSpec(wl="a.mp4"), "--nir: missing (--wl and --nir go together)"),
        (SourceSpec(nir="b.mkv"), "--wl: missing (--wl and --nir go together)"),
        (SourceSpec(session=str(missing)), f"{missing}: no such file or directory; give a "
         "recorded session folder, or --wl/--nir, --combined or --phantom"),
        (SourceSpec(session=str(plain_dir)), f"{plain_dir}: not a recorded session (no "
         "session.json); give a folder that nirf-overlay record wrote, or --wl/--nir for video "
         "files"),
        (SourceSpec(session=str(a_file)),
         f"{a_file}: a single file is not a source; use --combined FILE for a dual-view stream "
         "or --wl FILE --nir FILE for two streams"),
    ]
    for spec, message in cases:
        for call in (check_spec, open_source):
            with pytest.raises(SourceError) as e:
                call(spec)
            assert str(e.value) == message


def test_a_file_that_is_not_there_is_refused_naming_it(tmp_path, sequences):
    wl, _ = sequences
    for nir, problem in [(str(tmp_path / "none.mkv"), "no such file"),
                         (str(tmp_path), "is a directory, not a video file"),
                         (str(tmp_path / "nope" / "%06d.tiff"), f"no such folder {tmp_path / 'nope'}")]:
        with pytest.raises(SourceError) as e:
            open_source(SourceSpec(wl=wl, nir=nir))
        assert str(e.value).startswith(f"{nir}: {problem}; give "), str(e.value)


# -- opening -----------------------------------------------------------------------------------
def test_every_kind_opens_through_the_one_decision_point(sequences, session_dir):
    wl, nir = sequences
    opened = {
        "phantom": SourceSpec(phantom=True, size=(W, H), options={"frames": 2}),
        "pair": SourceSpec(wl=wl, nir=nir),
        "session": SourceSpec(session=session_dir),
        "sample": SourceSpec(),
    }
    for name, spec in opened.items():
        with open_source(spec) as src:
            pair = src.read()
            assert pair.nir.dtype == np.uint16 and pair.wl.dtype == np.uint8, name
            assert src.info.frame_count and src.info.seekable, name
    with open_source(SourceSpec(session=session_dir)) as src:
        assert src.info.frame_count == 3 and src.info.size == (W, H)


def test_the_sample_is_what_no_source_means(sequences):
    with open_source(SourceSpec(realtime=False, loop=True)) as src:
        assert src.profile == str(SAMPLE_PROFILE)  # the profile that comes with the sample
        assert src.info.description == default_sample().describe()
        assert src.info.description.startswith(f"WL {os.path.basename(SAMPLE_WL)} + NIR ")
        assert src.info.nir_bits == 12  # the sample says what the data cannot
    with open_source(SourceSpec(nir_bits=10)) as src:
        assert src.info.nir_bits == 10  # the command line wins
    wl, nir = sequences
    with open_source(SourceSpec(wl=wl, nir=nir, profile="p.json")) as src:
        assert src.profile == "p.json"  # set from the spec, whatever the kind
    with open_source(SourceSpec(wl=wl, nir=nir)) as src:
        assert src.profile is None


def test_base_defaults_of_a_source(sequences):
    wl, nir = sequences
    with open_source(SourceSpec(wl=wl, nir=nir)) as src:
        assert src.own_settings() is None
        assert src.wait_ready(0.0) is True
        assert list(src.markers) == []
        assert src.stats.dropped == 0


def test_a_live_phantom_waits_until_its_loop_is_rendered():
    spec = SourceSpec(phantom=True, size=(W, H), realtime=True, fps=30.0,
                      options={"loop_frames": 4})
    with open_source(spec) as src:
        assert src.wait_ready(60.0)
        assert src.rendered == 4
        src.read(timeout=5.0)
        assert src.stats.dropped >= 0


# -- lazy loading ------------------------------------------------------------------------------
def _run(code: str) -> dict:
    p = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_a_kinds_module_is_imported_only_when_chosen(tmp_path):
    got = _run(f"""
        import json, sys
        from nirf_overlay.sources import KINDS, SourceSpec, check_spec, open_source
        loaders = sorted({{k.loader.partition(":")[0] for k in KINDS}})
        loaded = lambda: [m for m in loaders if m in sys.modules]
        steps = {{"imported": loaded()}}
        for spec in (SourceSpec(wl="a.mp4", nir="b.mkv"), SourceSpec(combined="c.mkv"),
                     SourceSpec(phantom=True), SourceSpec()):
            check_spec(spec)
            spec.describe()
        steps["checked"] = loaded()
        with open_source(SourceSpec(phantom=True, size=(64, 48), options={{"frames": 1}})) as src:
            src.read()
        steps["phantom"] = loaded()
        steps["opencv_readers"] = "nirf_overlay.sources._cv" in sys.modules
        print(json.dumps(steps))
    """)
    assert got["imported"] == [] and got["checked"] == []
    assert got["phantom"] == ["nirf_overlay.sources.phantom_source"]
    assert not got["opencv_readers"]  # not chosen, so not imported


def test_a_missing_backend_fails_only_when_its_kind_is_chosen():
    kind = SourceKind("camera", "test camera", recognises=lambda spec: False,
                      describe=lambda spec: "camera", loader="nirf_overlay.sources.no_such:open")
    with pytest.raises(SourceError) as e:
        kind.load()
    text = str(e.value)
    assert "\n" not in text and text.startswith("test camera: cannot load its reader "
                                                "nirf_overlay.sources.no_such:open")


# -- the command line asks the registry ---------------------------------------------------------
@pytest.mark.parametrize("argv,named", [
    ([], False), (["--seed", "3", "--loop"], False), (["--phantom"], True), (["case01"], True),
    (["--nir", "n.mkv"], True), (["--combined", "c.mkv", "--layout", "top-bottom"], True),
])
def test_has_source_and_spec_from_args(argv, named):
    parser = argparse.ArgumentParser()
    add_source_arguments(parser)
    args = parser.parse_args(argv)
    assert has_source(args) is named
    spec = spec_from_args(args, realtime=True)
    assert spec.realtime and (kind_of(spec).name != "sample") is named
    assert spec.describe() == kind_of(spec).describe(spec)


@pytest.mark.parametrize("spec", [spec for spec, _, _ in CASES]
                         + [SourceSpec(phantom=True, size=(640, 360), fps=60.0, options={"frames": 3})])
def test_a_spec_survives_json(spec):
    back = SourceSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert back == spec and back.describe() == spec.describe()
    assert SourceSpec.from_dict({**spec.to_dict(), "no_such_field": 1}) == spec  # older/newer keys
