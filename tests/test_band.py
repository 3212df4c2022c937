"""The rim's radial band (processing/band.py) on drawn masks: a duct running
along the rim's outside (tangent, merged with it over a long arc) is cut, and
a rim alone, or one whose width changes slowly round the core, loses nothing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from nirf_overlay.processing.band import cut_to_band

SIZE = 200
C = (100, 100)
R_CORE, WIDTH = 40, 9  # px


def _scene(duct_width: int = 0, width_of=None):
    """(rim, d_core, core, duct): a ring round a disk core, plus a straight
    duct of ``duct_width`` touching the ring's outside at the top (tangent)."""
    yy, xx = np.mgrid[:SIZE, :SIZE]
    r = np.hypot(xx - C[0], yy - C[1])
    core = r <= R_CORE
    w = WIDTH if width_of is None else width_of(np.arctan2(yy - C[1], xx - C[0]))
    rim = (r > R_CORE + 1) & (r <= R_CORE + 1 + w)
    duct = np.zeros((SIZE, SIZE), bool)
    if duct_width:
        y = C[1] - (R_CORE + 1 + WIDTH) - duct_width / 2.0 + 1.0
        duct = np.abs(yy - y) <= duct_width / 2.0
        duct &= ~(rim | core) & (r > R_CORE + 1 + WIDTH)
        rim = rim | duct  # merged with the rim above half maximum
    d_core = cv2.distanceTransform((~core).astype(np.uint8), cv2.DIST_L2, 3)
    return rim, d_core, core, duct


@pytest.mark.parametrize("duct_width", [4, 8])
def test_tangent_duct_is_cut(duct_width):
    rim, d_core, core, duct = _scene(duct_width)
    ring = rim & ~duct
    cut_to_band(rim, d_core, core, float(WIDTH))
    left = np.count_nonzero(rim & duct)
    # (before the tangent cut: 70-91 px kept, 5-9 %; now 23, where the duct
    # and the ring touch)
    assert left <= 0.035 * np.count_nonzero(duct), f"{left} of {duct.sum()} duct px kept"
    assert np.count_nonzero(rim & ring) >= 0.99 * np.count_nonzero(ring)


def test_rim_alone_and_slowly_changing_width_are_kept():
    for width_of in (None, lambda a: np.round(7 + 3 * np.cos(a)).astype(int)):
        rim, d_core, core, _ = _scene(0, width_of)
        n0 = np.count_nonzero(rim)
        assert cut_to_band(rim, d_core, core, float(WIDTH)) <= 0.01 * n0


def test_the_circular_median_is_numpys_nanmedian_of_the_rolls():
    """The band's smoothing equals np.nanmedian over the rolled directions (NaNs left out,
    all-NaN windows NaN, windows wider than the circle wrapping), to the bit."""
    import warnings

    from nirf_overlay.processing.band import circular_nanmedian

    rng = np.random.default_rng(3)
    for t in range(400):
        nb, k = int(rng.integers(4, 100)), int(rng.integers(0, 80))
        e = (rng.normal(size=nb) * 10).astype(np.float32 if t % 2 else np.float64)
        e[rng.random(nb) < rng.random()] = np.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ref = np.nanmedian(np.stack([np.roll(e, s) for s in range(-k, k + 1)]), axis=0)
        got = circular_nanmedian(e, k)
        assert got.dtype == ref.dtype and np.array_equal(got, ref, equal_nan=True), (nb, k)
