"""The rim thickness has no sign bias in the full pipeline, with the tissue moving.

tests/test_rim_width_sign.py holds the measurement still (one static lesion,
analysis only).  Here the whole :class:`~nirf_overlay.processing.pipeline.Pipeline`
runs on consecutive frames of a moving view (breathing, drift, rotation, zoom:
``PhantomParams.motion`` 0 = still, 1 = the default, 2 = twice as fast and
far) across blur (depth), width and TBR.  The temporal noise filter averaged a
faint or blurred rim along its track (its gate lets a change within the noise
through), a one-sided smear the width's blur model does not describe: with the
default motion it widened 18 of 20 lesions of seeds 700-711 by 0.007 mm median,
and twice as fast far more.  The filter's weight is now capped by the tissue's
shift since the previous frame (:func:`~nirf_overlay.processing.normalise.motion_weight`).

The error is taken against the width as the calibration sees it,
``w * Truth.scale`` (``thickness_error_seen_mm``): the zoom of breathing is
not the measurement's (see test_rim_width_sign's breathing test), and each
moving rim is compared with the same rim still (motion 0, same seed): this
seed's lesion reads +0.02..+0.05 mm wide under 0.5 mm blur even still (a
static lean of that lesion, also with the analysis alone; seeds 613-614 do
not show it), which is not what is tested here.
Seed 612; the cap was tuned on the evaluate sets 700-711 only.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from nirf_overlay.evaluate import evaluate
from nirf_overlay.phantom import Phantom, PhantomParams
from nirf_overlay.processing.motion import FrameMotion
from nirf_overlay.processing.normalise import SMEAR_MAX_PX, motion_weight
from nirf_overlay.processing.pipeline import Pipeline
from nirf_overlay.settings import Settings

SEEDS = (612,)
MOTIONS = (0.0, 1.0, 2.0)
DEPTHS = (0.5, 3.5)  # blur sigma 0.2 / 0.5 mm
WIDTHS = (1.2, 2.5)
TBRS = (2.5, 10.0)
FRAMES = range(16, 24)  # the filter has history; no gain step


def seen_error(seed, motion, depth, width, tbr, size=(1280, 720)) -> float:
    """Median thickness error (mm) against ``w * scale`` of one lesion, full pipeline."""
    p = PhantomParams(seed=seed, size=size, n_lesions=1, rim_width_mm=(width, width),
                      tbr=(tbr, tbr), depth_mm=(depth, depth), p_complete=1.0, instrument=False,
                      bile_duct=False, gallbladder=False, n_spills=(0, 0), motion=motion,
                      gain_step_s=None)
    ph = Phantom(p)
    r = evaluate((ph.frame(i) for i in FRAMES), Pipeline(Settings(), ph.calibration()))
    (les,) = r["per_lesion"].values()
    return les["thickness_error_seen_mm"]


@pytest.fixture(scope="module")
def errors():
    return {k: seen_error(*k) for k in itertools.product(SEEDS, MOTIONS, DEPTHS, WIDTHS, TBRS)}


def test_moving_rims_within_the_thickness_target(errors):
    e = np.array(list(errors.values()))
    assert float(np.median(np.abs(e))) <= 0.06, errors
    assert float(np.max(np.abs(e))) <= 0.2, errors


def _widening(errors, keep):
    """Each moving rim's error minus the same rim's still (motion 0), where ``keep(key)``."""
    return np.array([v - errors[(k[0], 0.0) + k[2:]] for k, v in errors.items()
                     if k[1] > 0 and keep(k)])


@pytest.mark.parametrize("motion", MOTIONS[1:])
def test_motion_does_not_widen_the_rim(errors, motion):
    """Against the same rim still, moving does not widen it.  Measured on seed 612
    (median over blur, width and TBR): with the filter's full weight +0.0055 mm at
    the default motion and +0.013 mm at twice it (worst +0.036); capped, +0.003 and
    +0.005 (worst +0.011)."""
    d = _widening(errors, lambda k: k[1] == motion)
    assert float(np.median(d)) <= 0.008, f"motion {motion}: {d}"
    assert float(np.max(d)) <= 0.02, f"motion {motion}: {d}"


@pytest.mark.parametrize("axis,values", [(2, DEPTHS), (3, WIDTHS), (4, TBRS)])
def test_motion_widens_no_blur_width_or_tbr(errors, axis, values):
    """Nor for any blur, width or TBR (with the full weight the deep, blurred rims
    widened +0.013 mm median, up to +0.036 mm)."""
    for v in values:
        d = _widening(errors, lambda k: k[axis] == v)
        assert float(np.median(d)) <= 0.008, f"parameter {axis} = {v}: {d}"


@pytest.mark.parametrize("shift", [0.25, 1.0, 3.0, 8.0])
def test_filtered_moving_edge_smears_within_the_cap(shift):
    """The recursive filter with :func:`motion_weight`'s weight, run on a blurred
    edge moving ``shift`` px a frame (noise-free: every change within the gate),
    lags it by a spread of at most SMEAR_MAX_PX; at the full weight 0.5 it spreads
    by 1.4 x shift."""
    x = np.arange(-200.0, 200.0, 0.05)

    def edge(c):
        return 1.0 / (1.0 + np.exp(-(x - c) / 2.0))

    def spread(w):
        n_frames = 60  # the edge ends at 0; the weight of older lags is below 0.5**25
        f = edge(-n_frames * shift)
        for n in range(n_frames - 1, -1, -1):
            f = w * f + (1.0 - w) * edge(-n * shift)
        # f is edge(N shift) averaged over lags k with weights (1 - w) w^k: the
        # lag's spread is that of the derivative of f against the edge's own
        df, de = np.gradient(f, x), np.gradient(edge(0.0), x)
        var = lambda g: float(np.sum(g * x ** 2) / np.sum(g) - (np.sum(g * x) / np.sum(g)) ** 2)
        return np.sqrt(max(var(df) - var(de), 0.0))

    w = motion_weight(0.5, shift)
    assert 0.0 < w <= 0.5
    assert spread(w) <= SMEAR_MAX_PX * 1.02
    if shift * np.sqrt(0.5) / 0.5 > SMEAR_MAX_PX:
        assert spread(0.5) == pytest.approx(shift * np.sqrt(0.5) / 0.5, rel=0.02)
        assert w < 0.5
    assert motion_weight(0.5, 0.0) == 0.5  # still (or unknown): the setting's weight


def test_largest_shift_is_at_a_corner():
    m = np.array([[1.0, 0.0, 3.0], [0.0, 1.0, -4.0]])  # pure translation (3, -4)
    assert FrameMotion(m, 1.0, True).largest_shift((640, 360)) == pytest.approx(5.0)
    th = np.radians(1.0)  # a turn about the top-left corner: the far corner moves most
    r = np.array([[np.cos(th), -np.sin(th), 0.0], [np.sin(th), np.cos(th), 0.0]])
    far = np.hypot(639.0, 359.0) * 2 * np.sin(th / 2)
    assert FrameMotion(r, 1.0, True).largest_shift((640, 360)) == pytest.approx(far, rel=1e-6)
    assert FrameMotion(m, 0.0, False).largest_shift((640, 360)) == 0.0  # unknown motion


def test_motion_from_any_start_meets_a_sequential_run_at_a_scheduled_key():
    """The noise filter's weight follows the motion, so a batch chunk must reach a
    sequential run's motion state in its warm-up: after a key frame at a multiple of
    ``key_every`` two estimators started on different frames agree bit for bit."""
    from nirf_overlay.processing.motion import MOTION_RULES, MotionEstimator

    ph = Phantom(PhantomParams(seed=500, size=(320, 180), instrument=False))
    k = MOTION_RULES.key_every
    wl = {i: np.ascontiguousarray(ph.frame(i).wl) for i in range(k - 9, k + 4)}
    seq, chunk = MotionEstimator(), MotionEstimator()
    for i in range(k - 9, k + 4):
        a = seq.update(wl[i], i)
        b = chunk.update(wl[i], i) if i >= k - 4 else None
        if i < k:
            if i > k - 4:  # followed from different keys: close, not the same
                assert not np.array_equal(a.matrix, b.matrix)
            continue
        assert seq.state_bytes() == chunk.state_bytes()  # both took frame k as the key
        if i > k:
            assert np.array_equal(a.matrix, b.matrix) and a.ok == b.ok
