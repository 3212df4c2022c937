"""RimAnalyzer on small synthetic scenes with known truth.

Each scene is drawn here from scratch (rings with dark cores, tubes, a
filled blob, an instrument), blurred by a Gaussian like tissue scattering,
with shot-like noise, so every assertion has an exact answer to compare with.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from nirf_overlay.processing.analysis import Analysis, RimAnalyzer, analysis_grid_scale
from nirf_overlay.processing.result import PlaneCheck, RimMeasurement
from nirf_overlay.settings import Settings

MM = 0.12  # mm per pixel of the synthetic scenes
B0 = 60.0


def _dice(a, b):
    return 2.0 * (a & b).sum() / max(1, a.sum() + b.sum())


def scene(*, tbr=6.0, rim_mm=2.0, core_mm=6.0, blur_mm=0.3, cover=1.0, center=(200, 180),
          duct=False, blob=False, instrument=False, seed=0, size=(640, 360), gain=1.0,
          core_level=0.3):
    """A liver-like background with one lesion and optional distractors.

    Returns a dict with ``nir`` (float32, normalised counts x gain), ``wl``
    (uint8 BGR), the true ``rim``/``core``/``duct``/``blob`` masks and the
    true T, B, TBR of the lesion computed like the phantom does (noise-free
    blurred signal: mean over the true rim, median over a liver ring).
    """
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = B0 * (1.0 + 0.08 * np.sin(xx / w * 4.0) * np.cos(yy / h * 3.0))
    cx, cy = center
    r = np.hypot(xx - cx, yy - cy)
    ang = (np.arctan2(yy - cy, xx - cx) + np.pi) / (2 * np.pi)
    rc, rw = core_mm / MM, rim_mm / MM
    core = r < rc
    rim = (r >= rc) & (r < rc + rw) & (ang <= cover)
    sig = blur_mm / MM
    dev = np.zeros((h, w), np.float32)
    dev[core] = core_level - 1.0
    dev[rim] = -1.0
    light = rim.astype(np.float32)
    distract = np.zeros((h, w), np.float32)
    duct_m = np.zeros((h, w), bool)
    blob_m = np.zeros((h, w), bool)
    if duct:
        m = np.zeros((h, w), np.uint8)
        pts = np.array([[420, 30], [460, 110], [480, 200], [530, 320]], np.int32)
        cv2.polylines(m, [pts], False, 1, thickness=int(round(2.0 / MM)))
        duct_m = m.astype(bool)
        distract += duct_m * 10.0
    if blob:
        m = np.zeros((h, w), np.uint8)
        cv2.ellipse(m, (570, 70), (45, 28), 20, 0, 360, 1, -1)
        blob_m = m.astype(bool)
        distract += blob_m * 8.0
    blur = (lambda a: cv2.GaussianBlur(a, (0, 0), sig)) if sig > 0 else (lambda a: a)
    partial = base * (1.0 + blur(dev)) + base * blur(distract)
    lit = base * blur(light)
    ring = (r > rc + rw + 1.5 / MM) & (r <= rc + rw + 5.5 / MM) & ~duct_m & ~blob_m
    # solve the rim amplitude so the observed (blurred) T / B is ``tbr``
    Bt = float(np.median(partial[ring]))
    a = (tbr * Bt - partial[rim].mean()) / lit[rim].mean()
    clean = (partial + a * lit).astype(np.float32)
    inst = np.zeros((h, w), bool)
    wl = np.empty((h, w, 3), np.uint8)
    wl[:] = (45, 55, 130)  # liver, BGR
    wl = np.clip(wl + rng.normal(0, 2, wl.shape), 0, 255).astype(np.uint8)
    lesion = rim | core  # before the instrument hides part of it
    if instrument:
        m = np.zeros((h, w), np.uint8)
        cv2.line(m, (0, 330), (330, 250), 1, thickness=40)
        inst = m.astype(bool)
        clean[inst] = 0.04 * B0
        wl[inst] = (150, 145, 145)
        rim &= ~inst
        core &= ~inst
    T = float(clean[rim].mean())
    noisy = clean + rng.normal(0, 1, clean.shape).astype(np.float32) * np.sqrt(clean / 4.0 + 4.0)
    return {"nir": (noisy * np.float32(gain)).astype(np.float32), "wl": wl, "rim": rim, "core": core,
            "duct": duct_m, "blob": blob_m, "instrument": inst, "lesion": lesion,
            "T": T, "B": Bt, "tbr": T / Bt}


def analyze(sc, settings=None, mm=MM, frames=1):
    an = RimAnalyzer(settings or Settings(), mm_per_px=mm)
    out = None
    for _ in range(frames):
        out = an.analyze(sc["nir"], sc["wl"])
    return out


def test_output_contract():
    sc = scene()
    a = analyze(sc)
    assert isinstance(a, Analysis)
    for m in (a.rim_mask, a.fluorescence_mask):
        assert m.shape == sc["nir"].shape and m.dtype == np.uint8
        assert set(np.unique(m)) <= {0, 255}
    assert len(a.rims) == 1
    r = a.rims[0]
    assert isinstance(r, RimMeasurement) and isinstance(a.plane, PlaneCheck)
    assert r.contour.dtype == np.int32 and r.contour.ndim == 2 and r.contour.shape[1] == 2
    x, y, w, h = r.bbox
    assert (a.rim_mask[y:y + h, x:x + w] > 0).sum() == (a.rim_mask > 0).sum()
    assert abs(r.centroid[0] - 200) < 5 and abs(r.centroid[1] - 180) < 5
    assert r.contrast == pytest.approx(r.tbr - 1.0)
    assert r.rim_area_mm2 == pytest.approx(r.rim_area_px * MM * MM)
    assert r.rim_thickness_mm == pytest.approx(r.rim_thickness_px * MM)
    # every rim pixel is also fluorescent (the display mask is a superset)
    assert not ((a.rim_mask > 0) & (a.fluorescence_mask == 0)).any()
    assert a.threshold == pytest.approx(Settings().segment.threshold * a.background)


@pytest.mark.parametrize("tbr", [2.0, 5.0, 18.0])
@pytest.mark.parametrize("blur_mm", [0.2, 0.5])
def test_ring_accuracy_across_tbr_and_blur(tbr, blur_mm):
    sc = scene(tbr=tbr, blur_mm=blur_mm, rim_mm=1.5, seed=int(tbr * 10))
    a = analyze(sc)
    assert len(a.rims) == 1
    r = a.rims[0]
    assert _dice(a.rim_mask > 0, sc["rim"]) > 0.9
    assert abs(r.rim_thickness_mm - 1.5) < 0.2
    assert abs(r.tbr / sc["tbr"] - 1.0) < 0.08
    assert abs(r.background_intensity / sc["B"] - 1.0) < 0.05
    assert r.rim_completeness > 0.9


def test_thin_rim_heavy_blur_width_is_deblurred():
    # a 1 mm rim blurred with sigma 0.5 mm looks ~1.6 mm wide at half maximum
    sc = scene(tbr=8.0, rim_mm=1.0, blur_mm=0.5)
    r = analyze(sc).rims[0]
    assert abs(r.rim_thickness_mm - 1.0) < 0.2


def test_partial_rim_found_with_completeness():
    sc = scene(cover=0.6, tbr=6.0)
    a = analyze(sc)
    assert len(a.rims) == 1
    assert _dice(a.rim_mask > 0, sc["rim"]) > 0.85
    assert a.rims[0].rim_completeness == pytest.approx(0.6, abs=0.15)


def test_ducts_and_gallbladder_are_fluorescent_but_not_rims():
    sc = scene(duct=True, blob=True)
    a = analyze(sc)
    rim, fl = a.rim_mask > 0, a.fluorescence_mask > 0
    assert len(a.rims) == 1
    assert (rim & sc["duct"]).sum() == 0 and (rim & sc["blob"]).sum() == 0
    assert fl[sc["duct"]].mean() > 0.9 and fl[sc["blob"]].mean() > 0.9


def test_no_lesion_no_rim():
    sc = scene(duct=True, blob=True, tbr=1.0001, core_level=1.0)
    a = analyze(sc)
    assert a.rims == [] and not a.rim_mask.any()
    assert a.fluorescence_mask.any()


@pytest.mark.parametrize("gain", [0.37, 2.0, 5.0])
def test_gain_step_changes_nothing(gain):
    sc = scene(tbr=4.0)
    a1 = analyze(sc)
    sc2 = dict(sc, nir=sc["nir"] * np.float32(gain))
    a2 = analyze(sc2)
    assert _dice(a1.rim_mask > 0, a2.rim_mask > 0) > 0.99
    assert a2.rims[0].tbr == pytest.approx(a1.rims[0].tbr, rel=1e-3)
    assert a2.rims[0].rim_thickness_mm == pytest.approx(a1.rims[0].rim_thickness_mm, abs=0.02)
    assert a2.background == pytest.approx(a1.background * gain, rel=1e-3)


def test_instrument_next_to_duct_is_not_a_core():
    sc = scene(duct=True, instrument=True, tbr=1.0001, core_level=1.0)
    a = analyze(sc)
    assert a.rims == []


def test_lesion_partly_behind_instrument_is_still_found():
    sc = scene(instrument=True, center=(200, 240), core_mm=7.0)
    # the tool crosses the lesion (measured on the lesion before the tool was cut out of it)
    hidden = np.count_nonzero(sc["instrument"] & sc["lesion"])
    assert hidden > 0.05 * np.count_nonzero(sc["lesion"]), hidden
    a = analyze(sc)
    assert len(a.rims) >= 1
    assert _dice(a.rim_mask > 0, sc["rim"]) > 0.8


def test_without_calibration_mm_fields_are_none():
    a = analyze(scene(), mm=None)
    r = a.rims[0]
    assert r.rim_thickness_mm is None and r.rim_area_mm2 is None and r.core_area_mm2 is None
    assert r.rim_thickness_px > 0 and r.rim_area_px > 0


def test_tracking_keeps_ids_and_reset_drops_them():
    an = RimAnalyzer(Settings(), mm_per_px=MM)
    ids = []
    for k in range(5):
        sc = scene(center=(200 + 4 * k, 180 - 2 * k), seed=k)
        ids.append([r.rim_id for r in an.analyze(sc["nir"], sc["wl"]).rims])
    assert all(i == ids[0] for i in ids) and len(ids[0]) == 1
    # a far jump is a new lesion
    sc = scene(center=(420, 200), seed=9)
    new = [r.rim_id for r in an.analyze(sc["nir"], sc["wl"]).rims]
    assert new and new[0] != ids[0][0]
    an.reset()
    assert [r.rim_id for r in an.analyze(sc["nir"], sc["wl"]).rims] == [1]


def test_no_flicker_at_threshold():
    """A rim whose peak hovers around the threshold stays segmented frame to frame."""
    st = Settings()
    an = RimAnalyzer(st, mm_per_px=MM)
    areas = []
    for k in range(8):
        # TBR alternates just above / just below what a single frame needs
        sc = scene(tbr=1.75 if k % 2 == 0 else 1.55, seed=100 + k, blur_mm=0.3)
        a = an.analyze(sc["nir"], sc["wl"])
        areas.append((a.rim_mask > 0).sum())
    assert areas[0] > 0
    assert min(areas) > 0.5 * max(areas)


def test_plane_check_flags_fluorescence_in_polygon():
    sc = scene(duct=True)
    st = Settings()
    st.set("plane.polygon", [[400, 0], [640, 0], [640, 360], [400, 360]])
    a = analyze(sc, st)
    assert a.plane.flagged and a.plane.tbr > st.segment.threshold
    # the duct plus its blurred glow above the threshold
    duct_px = sc["duct"][:, 400:].sum()
    assert duct_px <= a.plane.area_px <= 2.0 * duct_px
    assert a.plane.area_mm2 == pytest.approx(a.plane.area_px * MM * MM)
    st.set("plane.polygon", [[0, 0], [100, 0], [100, 100], [0, 100]])
    a = analyze(sc, st)
    assert not a.plane.flagged and a.plane.area_px == 0


def test_update_settings_takes_effect():
    sc = scene(tbr=3.0)
    an = RimAnalyzer(Settings(), mm_per_px=MM)
    assert an.analyze(sc["nir"], sc["wl"]).rims
    st = Settings()
    st.set("segment.threshold", 15.0)
    an.update_settings(st)
    assert an.analyze(sc["nir"], sc["wl"]).rims == []


@pytest.mark.parametrize("width,expected", [(640, 320), (1280, 320), (1920, 240), (3840, 480)])
def test_analysis_grid(width, expected):
    assert width * analysis_grid_scale(width, 0.125) == expected


def test_valid_mask_excludes_pixels():
    sc = scene()
    valid = np.ones(sc["nir"].shape, bool)
    valid[:, :200] = False
    a = RimAnalyzer(Settings(), mm_per_px=MM).analyze(sc["nir"], sc["wl"], valid)
    assert not a.rim_mask[:, :200].any()


def test_analysis_every_reuses_last_result():
    st = Settings()
    st.set("segment.analysis_every", 2)
    an = RimAnalyzer(st, mm_per_px=MM)
    scs = [scene(center=(200 + 5 * k, 180), seed=k) for k in range(4)]
    out = [an.analyze(sc["nir"], sc["wl"]) for sc in scs]
    assert out[2] is out[1] and out[3] is not out[1]
    assert out[3].rims[0].centroid[0] == pytest.approx(215, abs=4)
    an.reset()
    assert an.analyze(scs[0]["nir"], scs[0]["wl"]) is not out[3]


def test_masks_stay_valid_for_two_further_frames_and_match_a_fresh_analyzer():
    # the analyzer writes its full-size masks into a ring of 3 buffer pairs:
    # a frame's masks must survive the next two frames unchanged, and the
    # reused buffers must hold exactly what a fresh analyzer computes (no
    # leftovers from an earlier frame's rim)
    scenes = [scene(seed=1, center=(200, 180)), scene(seed=2, center=(330, 170), tbr=3.0),
              scene(seed=3, center=(260, 200), cover=0.7), scene(seed=4, center=(420, 200))]
    an = RimAnalyzer(Settings(), mm_per_px=MM)
    kept = []
    for i, sc in enumerate(scenes):
        a = an.analyze(sc["nir"], sc["wl"])
        kept.append((a, a.rim_mask.copy(), a.fluorescence_mask.copy()))
        for b, rim, fl in kept[-3:]:
            assert np.array_equal(b.rim_mask, rim) and np.array_equal(b.fluorescence_mask, fl)
        fresh = RimAnalyzer(Settings(), mm_per_px=MM).analyze(sc["nir"], sc["wl"])
        assert (a.rim_mask > 0).any()
        assert np.array_equal(a.rim_mask, fresh.rim_mask)
        assert np.array_equal(a.fluorescence_mask, fresh.fluorescence_mask)
    # buffers are reused after three frames
    assert kept[3][0].rim_mask is not kept[2][0].rim_mask


# -- numba kernels of refine_rim against the numpy/OpenCV expressions they replace --

def _random_masks(seed, shape=(41, 57)):
    rng = np.random.default_rng(seed)
    # blobs of a few sizes, so components, holes and outlines are all present
    noise = cv2.GaussianBlur(rng.random(shape).astype(np.float32), (0, 0), 2.0)
    a = noise > np.quantile(noise, 0.55)
    b = cv2.GaussianBlur(rng.random(shape).astype(np.float32), (0, 0), 3.0)
    return a, b > np.quantile(b, 0.7), rng


@pytest.mark.parametrize("seed", range(6))
def test_refine_kernels_match_numpy(seed):
    from nirf_overlay.processing._kernels.refine import outline_touching, refine_zones
    from nirf_overlay.processing._kernels.width import ridge_sections
    from nirf_overlay.processing.masks import boundary
    from nirf_overlay.processing.refine import _keep_touching

    mask, ref, rng = _random_masks(seed)
    h, w = mask.shape
    # keep_touching == components (8-connected) that overlap ref
    n, lab = cv2.connectedComponents(mask.view(np.uint8), connectivity=8)
    hit = np.bincount(lab[ref & mask], minlength=n) > 0
    hit[0] = False
    out = np.empty_like(mask)
    assert _keep_touching(mask, ref, out) == hit[lab].sum()
    assert np.array_equal(out, hit[lab])

    # completeness counts == boundary & visible & touched
    d_r = cv2.distanceTransform((~ref).view(np.uint8), cv2.DIST_L2, 3)
    d_b = (rng.random(mask.shape) * 6).astype(np.float32)
    cb = boundary(mask) & (d_b > np.float32(2.0 * 1.3))
    m = cv2.moments((mask | ref).view(np.uint8), True)
    assert outline_touching(mask, ref, d_b, np.float32(2.0 * 1.3)) == (
        int((cb & (d_r <= 1.5)).sum()), int(cb.sum()), m["m00"], m["m10"], m["m01"])

    # zones and the core median
    img = rng.random(mask.shape).astype(np.float32)
    d_rim = cv2.distanceTransform((~ref).view(np.uint8), cv2.DIST_L2, 3)
    d_core = cv2.distanceTransform(mask.view(np.uint8), cv2.DIST_L2, 3)
    valid = rng.random(mask.shape) > 0.1
    zone, reach = np.empty_like(mask), np.empty_like(mask)
    not_out = np.empty(mask.shape, np.uint8)
    for f, width in ((1.0, 3.3), (1.7, 0.4)):
        rz, rc = int(np.ceil(f)), int(np.ceil(0.5 * width))
        med, n_out = refine_zones(img, d_rim, mask, valid, (d_core, 0, 0), f, width, zone, reach,
                                  not_out, np.empty(2 * h * w, np.float32))
        assert np.array_equal(zone, (d_rim <= 2.0 * f) & ~(d_core > rz) & valid)
        ref_reach = (d_rim <= 0.5 * width + 2.0 * f) & valid
        assert np.array_equal(reach, ref_reach)
        assert np.array_equal(not_out.astype(bool), ref_reach | mask)
        assert n_out == (~(ref_reach | mask)).sum()
        core_in = d_core > rc
        assert med == float(np.median(img[core_in] if core_in.sum() >= 4 else img[mask]))

    # ridge points, normals (also subsampled to 300) and the width fallback
    rim = cv2.dilate(ref.view(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    big = cv2.resize(rim.view(np.uint8), (w * 8, h * 8), interpolation=cv2.INTER_NEAREST).astype(bool)
    for m in (rim, big):
        dt = cv2.distanceTransform(m.view(np.uint8), cv2.DIST_L2, 5)
        dc = cv2.distanceTransform((~m).view(np.uint8), cv2.DIST_L2, 5) + rng.random(m.shape).astype(np.float32)
        gy = cv2.Sobel(dc, cv2.CV_32F, 0, 1, ksize=3)
        gx = cv2.Sobel(dc, cv2.CV_32F, 1, 0, ksize=3)
        peak = rng.random(m.shape).astype(np.float32)
        fb, n_r, ys, xs, ny, nx, pk = ridge_sections(m, dt, gy, gx, peak, 300)
        ridge = m & (dt >= cv2.dilate(dt, np.ones((3, 3), np.uint8)) - 0.5)
        assert n_r == ridge.sum()
        assert fb == float(np.median(2.0 * dt[ridge]))
        y0, x0 = np.nonzero(ridge)
        if y0.size > 300:
            sel = np.linspace(0, y0.size - 1, 300).astype(np.intp)
            y0, x0 = y0[sel], x0[sel]
        a, b = gy[y0, x0].astype(np.float64), gx[y0, x0].astype(np.float64)
        nrm = np.hypot(a, b)
        g = nrm > 1e-3
        assert np.array_equal(ys, y0[g].astype(np.float64)) and np.array_equal(xs, x0[g].astype(np.float64))
        assert np.array_equal(ny, a[g] / nrm[g]) and np.array_equal(nx, b[g] / nrm[g])
        assert np.array_equal(pk, peak[y0[g], x0[g]].astype(np.float64))
    assert n_r > 300  # the subsampled branch was exercised

    from nirf_overlay.processing._kernels.width import width_median
    t = rng.random((2, 51)) * 5
    t[0, ::7] = np.nan
    wsum = t[0] + t[1]
    for k in (51, 50):  # odd and even counts of finite widths
        fin = wsum[:k][np.isfinite(wsum[:k])]
        assert width_median(t[0, :k], t[1, :k]) == (float(np.median(fin)), fin.size)
    assert width_median(t[0, :1], t[1, :1])[1] == 0


@pytest.mark.parametrize("seed", range(4))
def test_candidate_and_ring_medians_match_numpy(seed):
    from nirf_overlay.processing._kernels.background import ring_median
    from nirf_overlay.processing._kernels.segment import ridge_median

    mask, ref, rng = _random_masks(seed)
    dt = cv2.distanceTransform(mask.view(np.uint8), cv2.DIST_L2, 3)
    ridge = mask & (dt >= cv2.dilate(dt, np.ones((3, 3), np.uint8)) - 0.5)
    assert ridge_median(mask, dt) == (float(np.median(dt[ridge])), int(ridge.sum()))
    assert ridge_median(np.zeros_like(mask), dt)[1] == 0

    img = rng.random((60, 80)).astype(np.float32)
    excl = rng.random((60, 80)) > 0.8
    d = cv2.distanceTransform(1 - ref.view(np.uint8), cv2.DIST_L2, 3)
    sl = np.s_[7:7 + d.shape[0], 11:11 + d.shape[1]]  # crops, as ring_background passes them
    for lo, ring_px in ((1.7, 3.3), (2.0, 5.0), (0.3, 1.1)):
        ring = (d > lo) & (d <= lo + ring_px) & ~excl[sl]
        med, n = ring_median(d, np.float32(lo), np.float32(lo + ring_px), excl[sl], img[sl])
        assert n == ring.sum() and med == float(np.median(img[sl][ring]))


# -- the rules: one frozen set, every rule in use ---------------------------------------

def test_rim_rules_are_frozen_and_every_rule_is_used():
    import dataclasses
    from pathlib import Path

    import nirf_overlay.processing as processing
    from nirf_overlay.processing.rules import RIM_RULES, RimRules

    with pytest.raises(dataclasses.FrozenInstanceError):
        RIM_RULES.glow_mm = 1.0
    here = Path(processing.__file__).parent
    src = "".join(p.read_text() for p in here.glob("*.py") if p.name != "rules.py")
    unused = [f.name for f in dataclasses.fields(RimRules) if f"RIM_RULES.{f.name}" not in src]
    assert not unused, f"rules nothing reads: {unused}"


@pytest.mark.parametrize("seed", range(3))
def test_instrument_test_uses_opencvs_hsv(seed):
    """The one-pass grey-and-dark kernel is cv2.cvtColor's S and V against the rules."""
    from nirf_overlay.processing._kernels.segment import grey_and_dark
    from nirf_overlay.processing.instruments import _SDIV
    from nirf_overlay.processing.rules import RIM_RULES as R

    rng = np.random.default_rng(seed)
    h, w = 64, 96
    bgr = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    grey = rng.integers(0, 256, (h, w, 1)) + rng.integers(-12, 13, (h, w, 3))
    bgr[h // 2:] = np.clip(grey, 0, 255).astype(np.uint8)[h // 2:]  # near-grey half: S near 50
    ratio = rng.uniform(0.0, 1.2, (h, w)).astype(np.float32)
    out = np.empty((h, w), bool)
    grey_and_dark(bgr, ratio, R.instrument_max_saturation, R.instrument_min_value,
                  np.float32(R.instrument_nir_dark), _SDIV, out)
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
    ref = ((hsv[..., 1] < R.instrument_max_saturation) & (hsv[..., 2] > R.instrument_min_value)
           & (ratio < np.float32(R.instrument_nir_dark)))
    assert out.any() and np.array_equal(out, ref)


# -- the stages' entries check their input once (the kernels check nothing) ------------

@pytest.mark.parametrize("shape", [(120, 200), (97, 131)])
@pytest.mark.parametrize("arg,value,error,message", [
    ("nir", lambda n: n.astype(np.float64), TypeError,
     r"nir_norm must be a \(H, W\) float32 array, got float64"),
    ("nir", lambda n: n.astype(np.uint16), TypeError, r"nir_norm must be a \(H, W\) float32"),
    ("nir", lambda n: n[..., None], ValueError, r"nir_norm must be a \(H, W\) float32 array, got shape"),
    ("nir", lambda n: np.repeat(n, 2, axis=1)[:, ::2], ValueError, r"nir_norm must be C-contiguous"),
    ("wl", lambda n: np.zeros(n.shape + (3,), np.float32), TypeError,
     r"wl must be a \(\d+, \d+, 3\) uint8 array, got float32"),
    ("wl", lambda n: np.zeros(n.shape, np.uint8), ValueError, r"wl must be a \(\d+, \d+, 3\) uint8"),
    ("wl", lambda n: np.zeros((n.shape[0] + 1, n.shape[1], 3), np.uint8), ValueError,
     r"wl must be a .* got shape"),
    ("valid", lambda n: np.ones(n.shape, np.uint8), TypeError,
     r"valid must be a \(\d+, \d+\) bool array, got uint8"),
    ("valid", lambda n: np.ones((n.shape[0], n.shape[1] - 1), bool), ValueError, r"valid must be a"),
])
def test_analyzer_refuses_wrong_input_with_a_clear_message(shape, arg, value, error, message):
    rng = np.random.default_rng(23)
    nir = rng.uniform(40, 80, shape).astype(np.float32)
    args = {"nir": nir, "wl": np.zeros(shape + (3,), np.uint8), "valid": np.ones(shape, bool)}
    args[arg] = value(nir)
    with pytest.raises(error, match=message):
        RimAnalyzer(Settings(), mm_per_px=MM).analyze(args["nir"], args["wl"], args["valid"])


def test_analyzer_reads_strided_wl_and_valid_as_their_copies():
    sc = scene(instrument=True, center=(200, 240), core_mm=7.0)
    valid = np.ones(sc["nir"].shape, bool)
    valid[:, :40] = False
    wide_wl, wide_valid = np.repeat(sc["wl"], 2, axis=1), np.repeat(valid, 2, axis=1)
    a = RimAnalyzer(Settings(), mm_per_px=MM).analyze(sc["nir"], wide_wl[:, ::2], wide_valid[:, ::2])
    b = RimAnalyzer(Settings(), mm_per_px=MM).analyze(sc["nir"], sc["wl"], valid)
    assert a.rims and np.array_equal(a.rim_mask, b.rim_mask)
    assert [r.tbr for r in a.rims] == [r.tbr for r in b.rims]


def _grid_inputs(seed=0, shape=(48, 64)):
    from nirf_overlay.processing.fluorescence import hysteresis_components

    rng = np.random.default_rng(seed)
    ratio = cv2.GaussianBlur(rng.uniform(0.5, 3.0, shape).astype(np.float32), (0, 0), 2.0)
    fluo, labels, stats = hysteresis_components(ratio, 1.6, 1.3)
    return dict(ratio=ratio, fluo=fluo, labels=labels, stats=stats, instr=np.zeros(shape, bool),
                valid=np.ones(shape, bool))


@pytest.mark.parametrize("shape", [(48, 64), (35, 51)])
@pytest.mark.parametrize("arg,value,error,message", [
    ("ratio", lambda a: a.astype(np.float64), TypeError, r"ratio must be a \(h, w\) float32 array"),
    ("ratio", lambda a: np.repeat(a, 2, axis=0)[::2], ValueError, r"ratio must be C-contiguous"),
    ("fluo", lambda a: a.astype(bool), TypeError, r"fluo must be a \(\d+, \d+\) uint8 array, got bool"),
    ("labels", lambda a: a.astype(np.int64), TypeError, r"labels must be a \(\d+, \d+\) int32 array"),
    ("labels", lambda a: a[1:], ValueError, r"labels must be a \(\d+, \d+\) int32 array, got shape"),
    ("stats", lambda a: a[:, :4].copy(), ValueError, r"stats must be a \(n, 5\) int32 array"),
    ("instr", lambda a: a.astype(np.uint8), TypeError, r"instr must be a \(\d+, \d+\) bool array"),
    ("valid", lambda a: a.T.copy(), ValueError, r"valid must be a \(\d+, \d+\) bool array, got shape"),
])
def test_find_candidates_refuses_wrong_input_with_a_clear_message(shape, arg, value, error, message):
    from nirf_overlay.processing.segment import find_candidates

    args = _grid_inputs(seed=len(arg), shape=shape)
    args[arg] = value(args[arg])
    with pytest.raises(error, match=message):
        find_candidates(args["ratio"], args["fluo"], args["labels"], args["stats"], args["instr"],
                        args["valid"], min_rim_px=4, min_core_px=4, core_ratio=0.7,
                        min_completeness=0.3, max_width_px=6.0)


def test_hysteresis_refuses_a_previous_mask_of_another_type():
    from nirf_overlay.processing.fluorescence import hysteresis_components

    ratio = np.full((8, 8), 2.0, np.float32)
    with pytest.raises(TypeError, match=r"prev must be a \(h, w\) uint8 array, got bool"):
        hysteresis_components(ratio, 1.6, 1.3, np.ones((8, 8), bool))
    with pytest.raises(TypeError, match=r"ratio must be a \(h, w\) float32 array, got float64"):
        hysteresis_components(ratio.astype(np.float64), 1.6, 1.3)


def test_refine_rim_refuses_wrong_input_with_a_clear_message():
    from nirf_overlay.processing.candidates import Candidate
    from nirf_overlay.processing.refine import refine_rim

    rim = np.zeros((20, 20), bool)
    rim[5:15, 5:15] = True
    cand = Candidate(1, (10, 10, 30, 30), rim, np.zeros_like(rim), rim, 3.0, 1.0, (20.0, 20.0))
    nir = np.full((80, 80), 60.0, np.float32)
    with pytest.raises(TypeError, match=r"nir must be a \(H, W\) float32 array, got float64"):
        refine_rim(nir.astype(np.float64), cand, 0.5, 60.0)
    with pytest.raises(ValueError, match=r"valid must be a \(80, 80\) bool array, got shape \(80, 81\)"):
        refine_rim(nir, cand, 0.5, 60.0, valid=np.ones((80, 81), bool))
    with pytest.raises(ValueError, match=r"blocked must be a \(20, 20\) bool array, got shape \(21, 20\)"):
        refine_rim(nir, cand, 0.5, 60.0, blocked=np.zeros((21, 20), bool))
