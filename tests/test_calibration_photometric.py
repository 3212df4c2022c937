"""Photometric calibration against synthetic targets with known truth.

Dark: a known fixed pattern and hot pixels under read noise.  Flat: known
vignetting, shot and read noise, on top of a dark frame.  (Refusals:
test_calibration_refusals.py.)
"""

import numpy as np
import pytest

from nirf_overlay.calibration.photometric import FrameStats, build_dark, build_flat, nir_quality
from nirf_overlay.calibration.synthetic import dark_frames, flat_frames, vignetting

HOT = [(10, 20, 800), (200, 100, 300), (300, 200, 1500), (0, 0, 400)]


@pytest.mark.parametrize("n", [1, 2, 7])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_frame_stats_match_numpy(n, dtype):
    rng = np.random.default_rng(n)
    frames = [rng.integers(0, 200, (6, 5)).astype(dtype) for _ in range(n)]
    st = FrameStats()
    for f in frames:
        st.add(f)
    stack = np.stack(frames).astype(np.float64)
    assert st.mean.dtype == np.float64 and st.mean.shape == (6, 5)
    np.testing.assert_allclose(st.mean, stack.mean(axis=0), rtol=1e-12)
    np.testing.assert_array_equal(st.max, stack.max(axis=0))
    if n == 1:
        assert st.std is None
    else:
        np.testing.assert_allclose(st.std, stack.std(axis=0, ddof=1), rtol=1e-9, atol=1e-12)


def test_dark_mean_and_hot_pixels():
    rng = np.random.default_rng(11)
    frames, truth = dark_frames((320, 240), 16, rng=rng, hot=HOT)
    res = build_dark(iter(frames), nir_bits=12)
    assert res.dark.dtype == np.float32 and res.dark.shape == (240, 320)
    assert res.hot_pixels.dtype == bool and res.hot_pixels.shape == (240, 320)
    # mean of 16 frames with 3 counts read noise: within 5 sigma of the truth
    assert np.abs(res.dark - truth).max() < 5 * 3 / 4 + 0.5
    found = {(int(x), int(y)) for y, x in np.argwhere(res.hot_pixels)}
    assert found == {(x, y) for x, y, _ in HOT}
    assert res.frames == 16 and abs(res.temporal_noise - 3) < 0.3
    assert abs(res.level - 100) < 1
    assert res.warnings == []


@pytest.mark.parametrize("strength,level", [(0.45, 1500.0), (0.2, 600.0)])
def test_flat_recovers_known_vignetting(strength, level):
    size = (320, 240)
    rng = np.random.default_rng(13)
    darks, dark_truth = dark_frames(size, 16, rng=rng, hot=HOT)
    dark = build_dark(darks, nir_bits=12)
    vig = vignetting(size, strength=strength, center=(150, 130))
    frames = flat_frames(size, 16, rng=rng, level=level, dark_truth=dark_truth, vignette=vig)
    res = build_flat(iter(frames), nir_bits=12, dark=dark.dark, hot_pixels=dark.hot_pixels)
    assert res.flat.dtype == np.float32 and res.flat.shape == (240, 320)
    assert abs(float(res.flat.mean(dtype=np.float64)) - 1) < 1e-5
    rel = res.flat / vig - 1
    rms = float(np.sqrt(np.mean(rel ** 2)))
    print(f"vignetting {strength}: flat RMS error {100 * rms:.3f}%, max {100 * np.abs(rel).max():.2f}%")
    assert rms < 0.02
    assert res.saturated_fraction == 0 and res.offset == "profile dark"
    assert abs(res.signal_counts - level) < 0.02 * level


def test_flat_without_dark_uses_target_minimum_where_part_is_unlit():
    """No dark frame: the offset is the target's own minimum, right when part of the field is unlit."""
    size = (320, 240)
    rng = np.random.default_rng(14)
    _, dark_truth = dark_frames(size, 1, rng=rng)
    vig = vignetting(size, strength=0.3)
    lit = np.ones((240, 320), np.float32)
    lit[:, :6] = 0  # a mask at the field edge
    frames = flat_frames(size, 16, rng=rng, level=1500, dark_truth=dark_truth, vignette=vig * lit)
    res = build_flat(frames, nir_bits=12)
    assert res.offset.startswith("target minimum")
    assert "capture a dark frame first" in res.warnings[0]
    # the unlit strip is below the floor: its gain is capped, and a warning says so
    assert 0 < res.floored_fraction < 0.05 and "floored" in res.warnings[1]
    inner = (slice(None), slice(30, None))  # away from the unlit strip and its blurred edge
    ratio = res.flat[inner] / vig[inner]
    ratio /= ratio.mean()
    assert float(np.sqrt(np.mean((ratio - 1) ** 2))) < 0.02


@pytest.mark.parametrize("nir_bits", [8, 12, 16])
def test_quality_readout(nir_bits):
    full = (1 << nir_bits) - 1
    nir = np.full((10, 10), full // 4, np.uint16)
    nir[0, :5] = full
    q = nir_quality(nir, nir_bits, dark=np.full((10, 10), 10.0))
    assert q["full_scale"] == full
    assert q["saturated_fraction"] == pytest.approx(0.05)
    assert q["mean_counts"] == pytest.approx(nir.mean() - 10)
    assert q["signal_fraction"] == pytest.approx((nir.mean() - 10) / full)
