"""Calibration input: NIR alone (dark, flat) or any source's pairs (registration)."""

from __future__ import annotations

import numpy as np
import pytest

from nirf_overlay.errors import CalibrationError, SourceError
from nirf_overlay.sources import SourceSpec
from nirf_overlay.sources.nir_only import collect, iter_captures, open_calibration_input

W, H, N = 64, 48, 4


@pytest.fixture
def nir_frames():
    rng = np.random.default_rng(5)
    return [rng.integers(0, 65535, (H, W), np.uint16) for _ in range(N)]


@pytest.fixture
def nir_sequence(tmp_path, image_sequence, nir_frames):
    return image_sequence(tmp_path / "nir", nir_frames, "tiff")


def test_nir_alone_is_read_bit_identical_and_rewinds(nir_sequence, nir_frames):
    with open_calibration_input(SourceSpec(nir=nir_sequence), need_wl=False) as inp:
        assert (inp.size, inp.nir_bits, inp.has_wl, inp.live) == ((W, H), 16, False, False)
        assert inp.description == f"NIR {nir_sequence}"
        caps = collect(inp, N + 5, what="calibrate dark")  # a file ends first
        assert [c.index for c in caps] == list(range(N))
        for cap, truth in zip(caps, nir_frames):
            assert cap.wl is None and cap.nir.dtype == np.uint16 and cap.nir.shape == (H, W)
            assert np.array_equal(cap.nir, truth)
        assert inp.rewind()
        assert np.array_equal(next(iter_captures(inp, 1, what="flat")).nir, nir_frames[0])


def test_nir_alone_says_its_bits_when_told(nir_sequence):
    with open_calibration_input(SourceSpec(nir=nir_sequence, nir_bits=12), need_wl=False) as inp:
        assert inp.nir_bits == 12 and inp.read().nir_bits == 12


def test_any_other_source_gives_its_pairs():
    spec = SourceSpec(phantom=True, size=(W, H), options={"frames": 3})
    with open_calibration_input(spec, need_wl=True, what="calibrate register") as inp:
        assert inp.has_wl and inp.size == (W, H) and inp.nir_bits == 12
        caps = collect(inp, 2, what="calibrate register")
        assert [c.index for c in caps] == [0, 1]
        assert caps[0].wl.shape == (H, W, 3) and caps[0].nir.dtype == np.uint16
        assert inp.rewind()


def test_what_is_refused(nir_sequence):
    with pytest.raises(CalibrationError, match="calibrate dark: no source given; this step "
                                               r"needs --nir \(the bundled sample"):
        open_calibration_input(SourceSpec(), need_wl=False, what="calibrate dark")
    with pytest.raises(CalibrationError, match="register: --wl: missing; registration needs both"):
        open_calibration_input(SourceSpec(nir=nir_sequence), need_wl=True, what="register")
    # --nir with another input is not NIR alone: the one-input rule of every source applies
    with pytest.raises(SourceError, match="give only one of"):
        open_calibration_input(SourceSpec(nir=nir_sequence, phantom=True), need_wl=False)
    with pytest.raises(SourceError, match="give only one of"):
        open_calibration_input(SourceSpec(nir=nir_sequence, session="s"), need_wl=False)
