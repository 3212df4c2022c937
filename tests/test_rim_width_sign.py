"""The rim thickness has no sign bias: as many rims too thin as too wide.

Across blur (depth), width, TBR and pixel size, one static lesion per
phantom (no tool, duct or motion, so only the width measurement is tested),
on seeds the method was not tuned on (tuned on 600-601).  Before the fix
every thin, blurred rim read 0.1-0.3 mm too wide and two thirds of all rims
read wide.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from nirf_overlay.evaluate import AnalysisOnly, evaluate
from nirf_overlay.phantom import Phantom, PhantomParams
from nirf_overlay.processing._kernels.fit import fit_rim_profile, rim_model

SEEDS = (610, 611)
SIZES = ((640, 360), (1280, 720))
DEPTHS = (0.5, 3.5)  # blur sigma 0.2 / 0.5 mm
WIDTHS = (1.0, 2.0, 3.0)
TBRS = (2.5, 10.0)


def _error(seed, size, depth, width, tbr) -> float:
    p = PhantomParams(seed=seed, size=size, n_lesions=1, rim_width_mm=(width, width),
                      tbr=(tbr, tbr), depth_mm=(depth, depth), p_complete=1.0, instrument=False,
                      bile_duct=False, gallbladder=False, n_spills=(0, 0), motion=0.0,
                      gain_step_s=None)
    ph = Phantom(p)
    r = evaluate((ph.frame(i) for i in range(2)), AnalysisOnly(calibration=ph.calibration()))
    (les,) = r["per_lesion"].values()
    return les["thickness_error_mm"]


@pytest.fixture(scope="module")
def errors():
    out = {}
    for seed, size, depth, width, tbr in itertools.product(SEEDS, SIZES, DEPTHS, WIDTHS, TBRS):
        out[(seed, size, depth, width, tbr)] = _error(seed, size, depth, width, tbr)
    return out


def test_thickness_error_has_no_sign_bias(errors):
    e = np.array(list(errors.values()))
    wide = float((e > 0).mean())
    assert 0.25 <= wide <= 0.75, f"{wide:.0%} of rims too wide: {errors}"
    assert float(np.median(np.abs(e))) <= 0.06
    assert abs(float(np.mean(e))) <= 0.02, f"mean error {np.mean(e):+.3f} mm"


@pytest.mark.parametrize("axis,values", [(2, DEPTHS), (3, WIDTHS), (4, TBRS), (1, SIZES)])
def test_no_sign_bias_along_each_parameter(errors, axis, values):
    """Neither blur, width, TBR nor pixel size makes the rims one-sidedly wide or thin."""
    for v in values:
        e = np.array([err for k, err in errors.items() if k[axis] == v])
        assert abs(float(np.median(e))) <= 0.03, f"parameter {axis} = {v}: median {np.median(e):+.3f} mm"
        # the worst single rim: 1 mm wide under 0.5 mm blur at 0.12 mm/px (8 px wide,
        # blur 4 px) reads up to 0.18 mm thin on seed 610; the project's limit is 0.2
        assert float(np.max(np.abs(e))) <= 0.2, f"parameter {axis} = {v}: {e}"


@pytest.mark.parametrize("w,s,core", [(8.5, 4.27, -0.4), (8.5, 4.27, 0.0), (17.0, 4.27, -0.4),
                                      (8.5, 2.0, -0.4), (12.0, 6.0, -0.2)])
def test_fit_recovers_width_of_a_noise_free_blurred_rim(w, s, core):
    """The blurred-box fit finds the true width even where width and blur trade off
    (w ~ 2 s), and with a core step that makes the half-maximum crossings asymmetric."""
    c0, c1, c2 = core, -core, 1.5
    fine = np.linspace(-40, 40, 8001)
    q = np.array([rim_model(t, w, s, c0, c1, c2) for t in fine])
    q = q / q.max()
    i = int(np.argmax(q))
    lev_in = 0.5 * (1.0 + q[0])  # half way from the core level to the peak
    left = fine[:i][q[:i] < lev_in][-1]
    right = fine[i:][q[i:] < 0.5][0]
    fwhm, mid = right - left, 0.5 * (right + left)
    dx = max(0.25, fwhm / 12.0)
    half_n = int(math.ceil(1.5 * fwhm / dx))
    t = (np.arange(2 * half_n + 1) - half_n) * dx + mid
    prof = np.array([rim_model(x, w, s, c0, c1, c2) for x in t])
    fw, fs, *_ = fit_rim_profile(prof, dx, half_n, fwhm)
    assert fw == pytest.approx(w, rel=0.01)
    assert fs == pytest.approx(s, rel=0.03)



def _one_frame_error(seed, width, motion, frame) -> tuple[float, float]:
    """(thickness error in mm against the nominal width, the frame's breathing scale)."""
    p = PhantomParams(seed=seed, size=(1280, 720), n_lesions=1, rim_width_mm=(width, width),
                      tbr=(10.0, 10.0), depth_mm=(0.5, 0.5), p_complete=1.0, instrument=False,
                      bile_duct=False, gallbladder=False, n_spills=(0, 0), motion=motion,
                      gain_step_s=None)
    ph = Phantom(p)
    pair = ph.frame(frame)
    r = evaluate(iter([pair]), AnalysisOnly(calibration=ph.calibration()))
    (les,) = r["per_lesion"].values()
    return les["thickness_error_mm"], pair.truth.scale


@pytest.mark.parametrize("seed,width,frames", [(610, 1.0, (39, 105)), (610, 3.0, (39, 105)),
                                               (611, 3.0, (66, 3))])
def test_breathing_moves_the_thickness_by_the_scale_only(seed, width, frames):
    """With breathing and camera motion the view is scaled by ``Truth.scale`` (within
    +-1.5 %) and the pipeline converts with the calibration's mm per px, which cannot know
    that zoom: a rim reads ``scale`` times its width.  That is the whole effect of motion
    on the thickness -- against the width as seen (``w * scale``) each frame's error is the
    static lesion's (measured: within 0.005 mm; raw, the frames at scale 1.013 and 0.987
    differ by 0.08 mm on a 3 mm rim).  On the evaluate sets the 10 frames round the gain
    step sit at scale > 1 on 8 of seeds 700-711, most of their +0.017 mm wide lean.
    """
    static, _ = _one_frame_error(seed, width, 0.0, 0)
    for frame in frames:
        raw, scale = _one_frame_error(seed, width, 1.0, frame)
        assert abs(scale - 1.0) > 0.005, "a frame away from scale 1 is needed"
        seen = raw + width - width * scale  # measured - w * scale
        assert abs(seen - static) <= 0.01, f"frame {frame}: scale {scale:.4f}, error {raw:+.3f} " \
                                           f"({seen:+.3f} against w * scale; static {static:+.3f})"
        assert abs(raw - static) > abs(seen - static)  # the scale is what moved it
