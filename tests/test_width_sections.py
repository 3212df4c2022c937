"""Cross-sections through a neighbour are left out of the rim's width fit (issue 17).

A bright duct running along a rim's outside merges with it in some
cross-sections (too wide at half maximum) and lifts the outer tail of others
(the profile rises again beyond the rim's outer edge); either kind, averaged
into the fitted mean profile, widened the thickness (seed 901: 1.42 -> 1.72
mm).  ``drop_neighbour_sections`` leaves both out and keeps the rim's own.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erf

from nirf_overlay.processing._kernels.width import drop_neighbour_sections, profile_crossings
from nirf_overlay.processing.rules import RIM_RULES


def _box(t, lo, hi, s):
    """A box from lo to hi blurred by sigma s, at the distances t."""
    return 0.5 * (erf((t - lo) / (np.sqrt(2) * s)) - erf((t - hi) / (np.sqrt(2) * s)))


def _sections(neighbour_gap):
    """Horizontal sections, one per row, from a medial point at x = 20: a rim 6 px wide
    (x 17-23, blur 1.5 px) on liver level 0; rows 0-9 alone, rows 10-14 with a duct 3 px
    wide and twice as bright ``neighbour_gap`` px beyond the rim's outer edge."""
    x = np.arange(80, dtype=np.float64)
    img = np.zeros((15, 80), np.float32)
    for row in range(15):
        prof = _box(x, 17.0, 23.0, 1.5)
        if row >= 10:
            lo = 23.0 + neighbour_gap
            prof = prof + 2.0 * _box(x, lo, lo + 3.0, 1.5)
        img[row] = prof
    n = img.shape[0]
    ys, xs = np.arange(n, dtype=np.float64), np.full(n, 20.0)
    ny, nx = np.zeros(n), np.ones(n)
    peak = np.full(n, float(_box(np.array([20.0]), 17.0, 23.0, 1.5)[0]))
    t_in, t_out = profile_crossings(img, ys, xs, ny, nx, 0.0, peak, 0.5, 0.5, 30.0, 0.25)
    return img, ys, xs, ny, nx, peak, t_in, t_out


def _kept(neighbour_gap):
    img, ys, xs, ny, nx, peak, t_in, t_out = _sections(neighbour_gap)
    fwhm = float(np.median(t_in + t_out))
    n = drop_neighbour_sections(img, ys, xs, ny, nx, 0.0, peak, t_in, t_out,
                                RIM_RULES.fit_section_max_width * fwhm, 1.5 * fwhm,
                                RIM_RULES.fit_section_rise, 0.5)
    return n, np.isfinite(t_in)


def test_sections_merged_with_a_neighbour_are_left_out():
    """The duct right against the rim: those sections read wide at half maximum."""
    n, kept = _kept(0.5)
    assert n == 10 and kept[:10].all() and not kept[10:].any()


def test_sections_rising_into_a_neighbour_beyond_the_edge_are_left_out():
    """The duct a little beyond the rim (a dip below half maximum between them): the
    half-maximum width is the rim's own, but the tail rises again into the duct."""
    img, ys, xs, ny, nx, peak, t_in, t_out = _sections(4.0)
    w = t_in + t_out
    assert np.allclose(w[10:], w[0], atol=0.3)  # the width alone does not see it
    n, kept = _kept(4.0)
    assert n == 10 and kept[:10].all() and not kept[10:].any()


def test_a_rim_alone_keeps_every_section():
    n, kept = _kept(100.0)  # the duct beyond the image
    assert n == 15 and kept.all()
