"""A 12-bit camera in 16-bit files, wherever it matters: the dark check, saturation
(flat, calibration readouts, every frame) and the one line that names ``--nir-bits``.

One rule decides it (:func:`nirf_overlay.frame.container_bits` and
:func:`~nirf_overlay.frame.clip_count`); the flat's "too dim" case is walked in
test_calibration_refusals.py and test_calibration_cli.py.
"""

import logging
import os
import subprocess
import sys

import numpy as np
import pytest

from nirf_overlay.calibration.model import OptionWarning
from nirf_overlay.calibration.photometric import build_dark, nir_quality
from nirf_overlay.calibration.synthetic import dark_frames
from nirf_overlay.frame import clip_count, container_bits
from nirf_overlay.processing.normalise import CONTAINER_FRAMES, Normaliser
from nirf_overlay.settings import Settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
W, H = 64, 48


def _clipped_frame(top=4095):
    """A 12-bit scene with a patch clipped at ``top`` (an eighth of the frame)."""
    rng = np.random.default_rng(3)
    nir = rng.integers(200, 1800, (H, W)).astype(np.uint16)
    nir[:12, :32] = top
    return nir


def test_the_rule():
    assert container_bits(4095, 16) == 12 and container_bits(900, 16) == 10
    assert container_bits(4095, 12) is None  # a depth given on purpose is not questioned
    assert container_bits(20000, 16) is None
    assert clip_count(4095, 16) == 4095  # values stop exactly at 12-bit full scale: clipped
    assert clip_count(4000, 16) == 65535  # below it: nothing says where it clips
    assert clip_count(4095, 12) == 4095 and clip_count(255, 8) == 255


def test_a_clipped_twelve_bit_frame_in_sixteen_bits_is_saturated():
    settings = Settings()
    nir = _clipped_frame()
    out = Normaliser().process(nir, nir.shape, nir_bits=16, settings=settings)
    assert out.saturated_fraction == pytest.approx(12 * 32 / (W * H))
    assert out.saturated[:12, :32].all() and not out.saturated[12:].any()
    # the same counts in a stream that has shown a wider value are not clipped at 4095
    norm = Normaliser()
    wide = nir.copy()
    wide[-1, -1] = 30000
    norm.process(wide, wide.shape, nir_bits=16, settings=settings)
    assert norm.process(nir, nir.shape, nir_bits=16, settings=settings).saturated_fraction == 0


def test_one_line_names_nir_bits_once(caplog):
    settings = Settings()
    nir = _clipped_frame()
    norm = Normaliser()
    with caplog.at_level(logging.WARNING, logger="nirf_overlay"):
        for _ in range(5):
            norm.process(nir, nir.shape, nir_bits=16, settings=settings)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1, lines
    assert "values fit in 12 bits" in lines[0] and "give --nir-bits 12" in lines[0]


def test_unclipped_stream_is_named_after_a_while_and_a_wide_one_never(caplog):
    settings = Settings()
    dim = _clipped_frame(top=3000)  # fits 12 bits, never reaches 4095
    wide = dim.copy()
    wide[0, 0] = 40000
    with caplog.at_level(logging.WARNING, logger="nirf_overlay"):
        norm = Normaliser()
        for i in range(CONTAINER_FRAMES + 5):
            norm.process(dim, dim.shape, nir_bits=16, settings=settings)
            if i == CONTAINER_FRAMES - 2:
                assert not caplog.records  # not before the stream has run a while
        assert len(caplog.records) == 1
        caplog.clear()
        norm = Normaliser()
        for _ in range(CONTAINER_FRAMES + 5):
            norm.process(wide, wide.shape, nir_bits=16, settings=settings)
        declared = Normaliser()
        for _ in range(CONTAINER_FRAMES + 5):  # 12 bits given: nothing to say
            declared.process(dim, dim.shape, nir_bits=12, settings=settings)
    assert caplog.records == []


def test_calibration_readout_counts_pixels_clipped_at_4095():
    q = nir_quality(_clipped_frame(), 16)
    assert q["clip_count"] == 4095
    assert q["saturated_fraction"] == pytest.approx(12 * 32 / (W * H))


def _lit_dark(n=4):
    """A 12-bit camera's "dark" with the light on: 1500 counts, 37 % of 4095."""
    return dark_frames((W, H), n, rng=np.random.default_rng(12), offset=1500)[0]


def test_a_lit_twelve_bit_dark_in_sixteen_bits_warns_naming_the_depth():
    res = build_dark(_lit_dark(), nir_bits=16)
    assert len(res.warnings) == 1
    w = res.warnings[0]
    assert isinstance(w, OptionWarning) and w.option == "nir_bits"
    assert w.startswith("dark: every value fits in 12 bits") and "37% of full scale (4095)" in w
    assert "give the camera's bit depth (12)" in w
    # a proper dark of the same camera says nothing
    good = dark_frames((W, H), 4, rng=np.random.default_rng(12))[0]
    assert build_dark(good, nir_bits=16).warnings == []


def test_calibrate_dark_names_the_flag(tmp_path, image_sequence):
    seq = image_sequence(str(tmp_path / "dark"), _lit_dark(), "tiff")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "nirf_overlay", "calibrate", "dark", "--nir", seq,
                        "--out", str(tmp_path / "p.json")],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("nirf-overlay: warning: dark: every value fits in 12 bits")
    assert lines[0].endswith("; see --nir-bits")


def test_process_says_it_once_on_the_terminal(tmp_path, image_sequence, capfd):
    """A 12-bit camera's 16-bit TIFFs through ``nirf-overlay process``: one line, once."""
    from nirf_overlay.cli import main

    rng = np.random.default_rng(5)
    wl = [np.full((H, W, 3), 90, np.uint8)] * 6
    nir = [np.where(rng.random((H, W)) < 0.2, 4095, 900).astype(np.uint16) for _ in range(6)]
    rc = main(["process", "--wl", image_sequence(str(tmp_path / "wl"), wl, "png"),
               "--nir", image_sequence(str(tmp_path / "nir"), nir, "tiff"),
               "--out", str(tmp_path / "out"), "--no-video", "--no-progress"])
    err = capfd.readouterr().err
    assert rc == 0, err
    said = [line for line in err.splitlines() if "values fit in 12 bits" in line]
    assert len(said) == 1, err
    assert said[0].startswith("nirf-overlay: warning: NIR: values fit in 12 bits")
    assert "give --nir-bits 12" in said[0]
