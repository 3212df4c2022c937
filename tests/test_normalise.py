"""Normalisation: dark/flat/gain math, temporal filter, saturation, homography, levels."""

import numpy as np
import pytest

from nirf_overlay.calibration import Calibration
from nirf_overlay.processing.levels import DisplayLevels, compress
from nirf_overlay.processing.normalise import Normaliser
from nirf_overlay.settings import Settings

H, W = 48, 64


def _settings(alpha=0.0, **kw):
    s = Settings()
    s.set("normalise.temporal_alpha", alpha)
    for k, v in kw.items():
        s.set(k, v)
    return s


def _vignetting(h=H, w=W):
    y, x = np.mgrid[0:h, 0:w]
    r2 = ((x - w / 2) / (w / 2)) ** 2 + ((y - h / 2) / (h / 2)) ** 2
    flat = (1.0 - 0.3 * r2).astype(np.float32)
    return flat / flat.mean()


@pytest.mark.parametrize("gain,exposure", [(1.0, 10.0), (2.0, 10.0), (1.5, 20.0)])
@pytest.mark.parametrize("use_dark,use_flat", [(True, True), (True, False), (False, True)])
def test_dark_flat_gain_math(gain, exposure, use_dark, use_flat):
    rng = np.random.default_rng(1)
    truth = rng.uniform(50, 900, (H, W)).astype(np.float32)  # normalised counts
    dark = rng.uniform(60, 200, (H, W)).astype(np.float32).round()
    flat = _vignetting()
    ref_gain, ref_exp = 1.0, 10.0
    scale = (gain / ref_gain) * (exposure / ref_exp)
    raw = truth * (flat if use_flat else 1) * scale + (dark if use_dark else 0)
    raw = np.round(raw).astype(np.uint16)
    cal = Calibration(dark=dark if use_dark else None, flat=flat if use_flat else None,
                      gain_ref=ref_gain, exposure_ref_ms=ref_exp)
    n = Normaliser(cal)
    out = n.process(raw, (H, W), nir_bits=12, gain=gain, exposure_ms=exposure, settings=_settings())
    assert out.nir.shape == (H, W) and out.nir.dtype == np.float32
    # raw rounding to whole counts is the only error: <= 0.5 count / (flat * scale)
    tol = 0.5 / ((flat.min() if use_flat else 1) * scale) + 1e-3
    np.testing.assert_allclose(out.nir, truth, atol=tol)
    assert out.gain_scale == pytest.approx(1 / scale)


def test_gain_reference_is_first_frame_without_calibration():
    raw = np.full((H, W), 400, np.uint16)
    n = Normaliser(None)
    s = _settings()
    a = n.process(raw, (H, W), nir_bits=12, gain=2.0, exposure_ms=5.0, settings=s).nir.copy()
    # the camera doubles its gain: raw doubles, the normalised value does not move
    b = n.process(raw * 2, (H, W), nir_bits=12, gain=4.0, exposure_ms=5.0, settings=s).nir
    np.testing.assert_allclose(a, 400.0)
    np.testing.assert_allclose(b, 400.0)
    s.set("normalise.gain_normalise", False)
    c = n.process(raw * 2, (H, W), nir_bits=12, gain=4.0, exposure_ms=5.0, settings=s).nir
    np.testing.assert_allclose(c, 800.0)


def test_saturation_flagged_and_counted():
    raw = np.full((H, W), 1000, np.uint16)
    raw[5:10, 5:15] = 4095  # 12-bit full scale
    raw[20, 20] = 4094  # below 0.9999 * 4095 -> not saturated
    s = _settings(**{"normalise.saturation_fraction": 0.9999})
    out = Normaliser().process(raw, (H, W), nir_bits=12, settings=s)
    assert out.saturated.dtype == np.uint8
    assert out.saturated[5:10, 5:15].all() and out.saturated.sum() == 50
    assert out.saturated_fraction == pytest.approx(50 / (H * W))
    # 16-bit stream with a wider value: 4095 is far from full scale
    wide = raw.copy()
    wide[0, 0] = 20000
    out16 = Normaliser().process(wide, (H, W), nir_bits=16, settings=s)
    assert out16.saturated.sum() == 0
    # ... but where every value stops at 4095, a 12-bit camera in a 16-bit container clipped
    # there (test_container_bits.py)
    assert Normaliser().process(raw, (H, W), nir_bits=16, settings=s).saturated.sum() == 50


def _noisy(truth, rng):
    return rng.poisson(truth).astype(np.uint16)


def test_temporal_filter_reduces_noise_on_static_scene():
    rng = np.random.default_rng(2)
    truth = np.full((96, 128), 400.0)
    s = _settings(0.8)
    n = Normaliser()
    for _ in range(15):
        out = n.process(_noisy(truth, rng), truth.shape, nir_bits=12, settings=s)
    single = _noisy(truth, rng).astype(np.float32)
    assert n.noise_a == pytest.approx(400 / (400 + 100), rel=0.25)  # Poisson: var = v
    # alpha 0.8: var ratio (1 - a) / (1 + a) = 1/9 in steady state -> std / 3
    assert out.nir.std() < 0.5 * single.std()
    assert abs(out.nir.mean() - 400) < 2


def test_temporal_filter_does_not_smear_a_moving_edge():
    rng = np.random.default_rng(3)
    h, w = 64, 128
    s = _settings(0.9)
    n = Normaliser()
    edge = 40
    for i in range(12):
        edge = 40 + 4 * i  # moves 4 px per frame
        truth = np.full((h, w), 100.0)
        truth[:, :edge] = 1500.0
        out = n.process(_noisy(truth, rng), (h, w), nir_bits=12, settings=s)
    # pixels the bright region just reached are bright at once, not a blend
    newly = out.nir[:, edge - 4:edge]
    assert newly.mean() > 1400
    assert out.nir[:, edge + 2:].mean() < 115
    # a plain recursive filter with the same alpha would lag badly: 1500*(1-0.9) + 100*0.9
    assert newly.min() > 1200


def test_reset_drops_temporal_state():
    n = Normaliser()
    s = _settings(0.9)
    n.process(np.full((H, W), 100, np.uint16), (H, W), nir_bits=12, settings=s)
    n.reset()
    out = n.process(np.full((H, W), 101, np.uint16), (H, W), nir_bits=12, settings=s)
    np.testing.assert_allclose(out.nir, 101.0)


def test_homography_warps_nir_into_wl_coordinates():
    rng = np.random.default_rng(4)
    raw = rng.integers(100, 3000, (H, W)).astype(np.uint16)
    dx, dy = 5, 3
    # WL (x, y) -> NIR (x + dx, y + dy)
    Hm = np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1]], float)
    dark = np.full((H, W), 50, np.float32)
    n = Normaliser(Calibration(dark=dark, homography_wl_to_nir=Hm))
    out = n.process(raw, (H, W), nir_bits=12, settings=_settings())
    expect = raw.astype(np.float32) - 50
    np.testing.assert_allclose(out.nir[: H - dy, : W - dx], expect[dy:, dx:], atol=1e-3)
    # outside the NIR field of view: no signal, marked invalid
    assert out.valid is not None and not out.valid[:, W - dx:].any()
    np.testing.assert_allclose(out.nir[:, W - dx:], 0.0)


def test_identity_homography_skips_the_warp():
    raw = np.arange(H * W, dtype=np.uint16).reshape(H, W)
    n = Normaliser(Calibration(homography_wl_to_nir=np.eye(3)))
    out = n.process(raw, (H, W), nir_bits=16, settings=_settings())
    assert out.valid is None
    np.testing.assert_array_equal(out.nir, raw.astype(np.float32))


def test_calibration_of_wrong_size_is_refused():
    from nirf_overlay.errors import CalibrationError

    n = Normaliser(Calibration(dark=np.zeros((10, 10), np.float32), source_path="p.json"))
    with pytest.raises(CalibrationError, match="p.json: dark is 10x10"):
        n.process(np.zeros((H, W), np.uint16), (H, W), settings=_settings())


def test_histogram_levels_match_percentiles_and_stay_steady():
    rng = np.random.default_rng(5)
    truth = rng.gamma(4.0, 100.0, (240, 320))
    s = _settings(0.0)
    n, lv = Normaliser(), DisplayLevels()
    los, his = [], []
    for _ in range(20):
        raw = _noisy(truth, rng)
        out = n.process(raw, truth.shape, nir_bits=12, settings=s)
        lo_t, hi_t, _ = lv.target(out.hist, out.hist_scale, 1.0, 99.7)
        ref_lo, ref_hi = np.percentile(out.nir, [1.0, 99.7])
        assert lo_t == pytest.approx(ref_lo, rel=0.05, abs=3)
        assert hi_t == pytest.approx(ref_hi, rel=0.05)
        L = lv.update(out.hist, out.hist_scale, s)
        los.append(L.lo)
        his.append(L.hi)
    # smoothed levels barely move from frame to frame
    assert np.max(np.abs(np.diff(his[5:]))) < 0.01 * np.mean(his)
    assert los[-1] < his[-1]


def test_levels_roi_limits_the_histogram():
    raw = np.full((H, W), 100, np.uint16)
    raw[:, W // 2:] = 3000
    s = _settings(**{"levels.roi": [0, 0, W // 2, H]})
    out = Normaliser().process(raw, (H, W), nir_bits=12, settings=s)
    lo, hi, med = DisplayLevels().target(out.hist, out.hist_scale, 1, 99.7)
    assert hi < 200  # the bright half is outside the ROI


@pytest.mark.parametrize("comp,formula", [
    ("linear", lambda x: x),
    ("gamma", lambda x: x ** 0.5),
    ("log", lambda x: np.log(1 + 50 * x) / np.log(1 + 50)),
])
def test_compression_is_the_documented_curve(comp, formula):
    x = np.linspace(0, 1, 101)
    t = compress(x, comp, gamma=0.5, log_strength=50)
    assert t.dtype == np.float64 and t.shape == x.shape
    assert t[0] == pytest.approx(0) and t[-1] == pytest.approx(1)
    assert np.all(np.diff(t) > 0)
    np.testing.assert_allclose(t, formula(x), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(compress(np.array([-0.5, 1.5]), comp, gamma=0.5, log_strength=50),
                                  [0.0, 1.0])  # clipped to 0..1
    if comp != "linear":  # weak signal is lifted
        assert t[10] > 0.1


# -- the stage's entry checks its input once (the kernels check nothing) -------------

@pytest.mark.parametrize("shape", [(48, 64), (31, 57)])
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32, np.float64])
def test_normaliser_refuses_nir_of_another_dtype(shape, dtype):
    rng = np.random.default_rng(17)
    raw = rng.integers(0, 200, shape).astype(dtype)
    with pytest.raises(TypeError, match=rf"raw must be a \(Hn, Wn\) uint16 array, got "
                                        rf"{np.dtype(dtype).name} \({shape[0]}, {shape[1]}\)"):
        Normaliser().process(raw, shape, settings=_settings())


@pytest.mark.parametrize("shape", [(48,), (48, 64, 3), (2, 48, 64)])
def test_normaliser_refuses_nir_of_another_shape(shape):
    raw = np.random.default_rng(18).integers(0, 4000, shape).astype(np.uint16)
    with pytest.raises(ValueError, match=r"raw must be a \(Hn, Wn\) uint16 array, got shape"):
        Normaliser().process(raw, (48, 64), settings=_settings())


@pytest.mark.parametrize("shape", [(48, 64), (31, 57)])
@pytest.mark.parametrize("view", ["half of a side-by-side frame", "every other column", "flipped"])
def test_normaliser_takes_strided_nir_as_its_contiguous_copy(shape, view):
    """Sources hand out views (a combined frame's half): the normaliser copies them once."""
    h, w = shape
    rng = np.random.default_rng(19)
    big = rng.integers(0, 4000, (h, 2 * w)).astype(np.uint16)
    raw = {"half of a side-by-side frame": big[:, w:], "every other column": big[:, ::2],
           "flipped": big[::-1, :w]}[view]
    assert not raw.flags.c_contiguous
    out = Normaliser().process(raw, shape, nir_bits=12, settings=_settings())
    ref = Normaliser().process(np.ascontiguousarray(raw), shape, nir_bits=12, settings=_settings())
    assert out.nir.dtype == np.float32 and out.nir.shape == shape
    assert np.array_equal(out.nir, ref.nir) and np.array_equal(out.saturated, ref.saturated)


def test_whole_count_dark_is_read_as_uint16_with_the_same_result_to_the_bit():
    # a measured dark holds whole counts: the kernel reads it as uint16 (half
    # the bytes per frame); a dark with fractions stays float32.  Both give
    # the same filtered frames, bit for bit, over a run with the filter on.
    rng = np.random.default_rng(4)
    dark = rng.integers(60, 200, (H, W)).astype(np.float32)
    frames = [rng.integers(100, 3000, (H, W)).astype(np.uint16) for _ in range(4)]
    s = _settings(alpha=0.6)
    whole = Normaliser(Calibration(dark=dark))
    as_float = Normaliser(Calibration(dark=dark))
    for raw in frames:
        a = whole.process(raw, (H, W), nir_bits=12, settings=s).nir.copy()
        if as_float._shape_key is None:
            as_float.process(raw, (H, W), nir_bits=12, settings=s)  # set up its buffers ...
            as_float.reset()
            as_float._dark = as_float._dark.astype(np.float32)  # ... then read float32
            b = as_float.process(raw, (H, W), nir_bits=12, settings=s).nir
        else:
            b = as_float.process(raw, (H, W), nir_bits=12, settings=s).nir
        assert np.array_equal(a, b)
    assert whole._dark.dtype == np.uint16 and as_float._dark.dtype == np.float32
    half = Normaliser(Calibration(dark=dark + np.float32(0.5)))
    half.process(frames[0], (H, W), nir_bits=12, settings=s)
    assert half._dark.dtype == np.float32
