"""The rim mask's outer edge follows the measured width, not each pixel's level crossing.

The width is measured from the whole rim (a median over sections and a
blur-model fit) and is right within a few hundredths of a mm; the mask drawn
pixel by pixel at the fitted edge levels is not: its outer edge wanders with
the local peak and liver level by 1-3 WL px on thin, blurred rims (issue
17).  On the refine grid, :func:`~nirf_overlay.processing._kernels.width.constant_width_field`
moves that edge half way to the measured width from the inner edge, by at
most 1 WL px outwards.
"""

from __future__ import annotations

import numpy as np

from nirf_overlay.evaluate import AnalysisOnly, dice, evaluate
from nirf_overlay.phantom import Phantom, PhantomParams
from nirf_overlay.processing._kernels.width import constant_width_field

N = 160
C = (N - 1) / 2.0
R_CORE, W = 40.0, 12.0


def _polar():
    yy, xx = np.mgrid[:N, :N].astype(np.float64)
    return np.hypot(xx - C, yy - C), np.arctan2(yy - C, xx - C)


def _ring_field(outer: np.ndarray):
    """An edge field like ``edge_field``'s: > 0 between R_CORE and ``outer`` (per pixel),
    slope 0.1 per px (q units), -1 beyond 2 px of the band; and the radial normals."""
    rr, th = _polar()
    f = np.minimum(rr - R_CORE, outer - rr) * 0.1
    f[(rr < R_CORE - 2.0) | (rr > outer + 2.0)] = -1.0
    return f.astype(np.float32), np.sin(th).astype(np.float32), np.cos(th).astype(np.float32)


def _moved(outer: np.ndarray, reach: float) -> np.ndarray:
    field, ny, nx = _ring_field(outer)
    out = np.empty_like(field)
    constant_width_field(field, ny, nx, W, reach, out)
    return out > 0


def test_wandering_outer_edge_is_pulled_to_the_width():
    rr, th = _polar()
    truth = (rr > R_CORE) & (rr <= R_CORE + W)
    wander = R_CORE + W + 3.0 * np.sin(5 * th)  # inner edge right, outer edge +-3 px
    level = (rr > R_CORE) & (rr <= wander)
    out = _moved(wander, 2.0)
    assert dice(out, truth) > dice(level, truth) + 0.02, (dice(out, truth), dice(level, truth))
    # the outer edge's error is halved: 1.5 px (+ pixel centres) at most
    err = np.abs(rr - (R_CORE + W))
    assert err[out ^ truth].max() <= 2.2
    # the inner edge stays where it was
    assert not (out & (rr <= R_CORE)).any()
    assert (out[truth & (rr <= R_CORE + 0.5 * W)]).all()


def test_a_thin_rim_grows_no_further_than_the_reach():
    rr, th = _polar()
    thin = np.full(rr.shape, R_CORE + W - 4.0)  # 4 px too thin all round
    level = (rr > R_CORE) & (rr <= thin)
    out = _moved(thin, 1.0)
    grown = rr[out & ~level]
    assert grown.size >= 200  # widened towards W all round (~300 px) ...
    assert grown.max() <= R_CORE + W - 4.0 + 1.0 + 0.05  # ... by at most the reach
    assert not (level & ~out).any()  # and nothing of the rim is lost


def test_thin_blurred_rims_reach_the_dice_target():
    """1.2 mm rims blurred by sigma 0.4 mm, no tool, duct or motion: mean Dice >= 0.95.

    Before the outer edge followed the width, seeds 620-623 read 0.930-0.941
    (mean 0.934); after, 0.952-0.967 (mean 0.958), the thickness unchanged.
    """
    dices = []
    for seed in (620, 621, 622, 623):
        p = PhantomParams(seed=seed, size=(1280, 720), n_lesions=1, rim_width_mm=(1.2, 1.2),
                          tbr=(3.0, 3.0), depth_mm=(3.0, 3.0), p_complete=1.0, instrument=False,
                          bile_duct=False, gallbladder=False, n_spills=(0, 0), motion=0.0,
                          gain_step_s=None)
        ph = Phantom(p)
        r = evaluate((ph.frame(i) for i in range(2)), AnalysisOnly(calibration=ph.calibration()))
        dices.append(r["mean_dice"])
    print("Dice per seed", np.round(dices, 4))
    assert float(np.mean(dices)) >= 0.95, f"Dice per seed {np.round(dices, 3)}"
    assert min(dices) >= 0.942, f"Dice per seed {np.round(dices, 3)}"


def test_a_ray_at_an_angle_reads_the_width_across_the_rim():
    """Rays 25 degrees off the band's normal: the edge of a band of the right width stays
    (along the ray it would read 1 / cos 25 = 10 % too wide and move in by 0.56 px)."""
    yy = np.mgrid[:N, :N][0].astype(np.float64)
    lo, hi = 60.0, 60.0 + W
    field = (np.minimum(yy - lo, hi - yy) * 0.1).astype(np.float32)
    field[(yy < lo - 2.0) | (yy > hi + 2.0)] = -1.0
    a = np.radians(25.0)
    ny = np.full(field.shape, np.cos(a), np.float32)  # away from the "core" at small y
    nx = np.full(field.shape, np.sin(a), np.float32)
    out = np.empty_like(field)
    constant_width_field(field, ny, nx, W, 1.0, out)
    col = out[:, N // 2].astype(np.float64)
    # the outer edge: where the column's field crosses 0 beyond the middle
    k = int(np.nonzero((col[:-1] > 0) & (col[1:] <= 0) & (np.arange(N - 1) > lo + W / 2))[0][0])
    edge = k + col[k] / (col[k] - col[k + 1])
    assert abs(edge - hi) <= 0.15, edge
