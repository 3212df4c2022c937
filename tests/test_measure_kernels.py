"""Per-lesion kernels and shortcuts of :mod:`nirf_overlay.processing.refine` and friends
against the numpy / OpenCV expressions they replace (bit-identical)."""

import cv2
import numpy as np
import pytest

from nirf_overlay.processing._kernels.background import outline_near_blocked, ring_median
from nirf_overlay.processing.masks import boundary


def _blobs(seed, shape, q):
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.random(shape).astype(np.float32), (0, 0), 3.0)
    return noise > np.quantile(noise, q), rng


@pytest.mark.parametrize("seed", range(6))
def test_outline_near_blocked_matches_boundary_and_dilate(seed):
    core, rng = _blobs(seed, (37, 53), 0.6)
    blocked = _blobs(seed + 100, (37, 53), 0.93)[0]
    if seed % 2:
        blocked[0, :] = blocked[-1, :] = blocked[:, 0] = blocked[:, -1] = True
    for b in (blocked, np.zeros_like(blocked)):
        cb = boundary(core)
        near = cv2.dilate(b.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        hidden, n_core, ys, xs = outline_near_blocked(core, b, 2)
        assert hidden == bool((cb & near).any())
        assert n_core == core.sum()
        y0, x0 = np.nonzero(cb & ~near)
        assert np.array_equal(ys, y0) and np.array_equal(xs, x0)
    # crops of the analysis grid, as ring_background passes them
    big = np.zeros((50, 70), bool)
    big[5:42, 9:62] = core
    bb = np.zeros((50, 70), bool)
    bb[5:42, 9:62] = blocked
    sl = np.s_[5:42, 9:62]
    res = outline_near_blocked(big[sl], bb[sl], 2)
    ref = outline_near_blocked(core, blocked, 2)
    assert res[:2] == ref[:2] and np.array_equal(res[2], ref[2]) and np.array_equal(res[3], ref[3])


@pytest.mark.parametrize("seed", range(40))
def test_ring_on_a_crop_round_the_core_is_the_ring_of_the_whole_box(seed):
    # ring_background takes the distance transform only on the core's box
    # grown by hi / 0.955 + 2 (ends on a 16-column grid): the ring's pixels
    # and values are the same
    from nirf_overlay.processing.background import _ring_crop

    rng = np.random.default_rng(seed)
    H, W = rng.integers(40, 300, 2)
    core = np.zeros((H, W), np.uint8)
    for _ in range(rng.integers(1, 4)):
        cv2.ellipse(core, ((float(rng.uniform(0, W)), float(rng.uniform(0, H))),
                           (float(rng.uniform(3, 60)), float(rng.uniform(3, 60))),
                           float(rng.uniform(0, 180))), 1, -1)
    if seed % 2:
        core[rng.random((H, W)) > 0.999] = 1  # stray specks widen the box
    img = rng.random((H, W)).astype(np.float32)
    excl = rng.random((H, W)) > 0.7
    d_all = cv2.distanceTransform(1 - core, cv2.DIST_L2, 3)
    for lo, ring_px in ((3.0, 10.0), (5.7, 12.8), (1.5, 25.6), (0.7, 2.3)):
        hi = lo + ring_px
        ax0, ay0, ax1, ay1 = _ring_crop(core, hi)
        sl = np.s_[ay0:ay1, ax0:ax1]
        d = cv2.distanceTransform(1 - core[sl], cv2.DIST_L2, 3)
        inside = d_all[sl] <= np.float32(hi)
        assert np.array_equal(d[inside], d_all[sl][inside])
        assert (d_all <= np.float32(hi)).sum() == (d <= np.float32(hi)).sum()
        assert ring_median(d, np.float32(lo), np.float32(hi), excl[sl], img[sl]) == \
            ring_median(d_all, np.float32(lo), np.float32(hi), excl, img)
    assert _ring_crop(np.zeros((9, 9), np.uint8), 5.0) is None


def test_screened_rim_fit_is_the_exact_grid_search():
    # fit_rim_profile screens each grid with a cheap erf and evaluates only the
    # points near the best with libm's: the same result as evaluating them all
    from math import erf, sqrt

    from nirf_overlay.processing._kernels.fit import fit_rim_profile, fit_rim_profile_exact

    rng = np.random.default_rng(7)
    for _ in range(300):
        fwhm = rng.uniform(2, 30)
        dx = max(0.25, fwhm / 12.0)
        half_n = int(np.ceil(1.5 * fwhm / dx))
        t = (np.arange(2 * half_n + 1) - half_n) * dx
        w, s = fwhm * rng.uniform(0.2, 1.4), fwhm * rng.uniform(0.05, 1.2)
        pin = 0.5 * (1 + np.array([erf((x + w / 2) / (sqrt(2) * s)) for x in t]))
        pout = 0.5 * (1 + np.array([erf((x - w / 2) / (sqrt(2) * s)) for x in t]))
        prof = (rng.uniform(-1, 0.2) + rng.uniform(0.1, 1.2) * pin + rng.uniform(0.2, 3) * (pin - pout)
                + rng.normal(0, rng.choice([0.0, 0.01, 0.05]), t.size))
        assert fit_rim_profile(prof, dx, half_n, fwhm) == fit_rim_profile_exact(prof, dx, half_n, fwhm)


def test_scale_contour_matches_numpy():
    from nirf_overlay.processing._kernels.refine import scale_contour

    rng = np.random.default_rng(3)
    c = rng.integers(0, 400, (257, 2)).astype(np.int32)
    for r in (1.0, 0.5, 0.25, 0.125, 0.0625):
        ref = (np.round((c.astype(np.float64) + 0.5) / r - 0.5) + np.array([17, 3])).astype(np.int32)
        out = scale_contour(c, r, 17, 3)
        assert out.dtype == np.int32 and np.array_equal(out, ref)
    # crops of findContours' (n, 1, 2) output, as refine_rim passes them
    m = np.zeros((40, 50), np.uint8)
    cv2.circle(m, (25, 20), 12, 1, -1)
    cnt = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0][0].reshape(-1, 2)
    ref = (np.round((cnt.astype(np.float64) + 0.5) / 0.25 - 0.5) + np.array([5, 9])).astype(np.int32)
    assert np.array_equal(scale_contour(cnt, 0.25, 5, 9), ref)


@pytest.mark.parametrize("seed", range(30))
def test_core_distance_and_blocked_distance_on_crops(seed):
    # refine_rim's distance inside the core and to blocked pixels are taken
    # on crops round the core: the zones and counts they give are the same
    from nirf_overlay.processing._kernels.refine import outline_touching, refine_zones
    from nirf_overlay.processing.masks import aligned_crop
    from nirf_overlay.processing.refine import _core_distance

    rng = np.random.default_rng(seed)
    H, W = rng.integers(30, 260, 2)
    core = np.zeros((H, W), np.uint8)
    for _ in range(rng.integers(1, 3)):
        cv2.ellipse(core, ((float(rng.uniform(0, W)), float(rng.uniform(0, H))),
                           (float(rng.uniform(3, 80)), float(rng.uniform(3, 80))),
                           float(rng.uniform(0, 180))), 1, -1)
    core = core.astype(bool)
    full = cv2.distanceTransform(core.view(np.uint8), cv2.DIST_L2, 3)
    x0, y0, d = _core_distance(core)
    if not core.any():
        assert d.size == 0
    else:
        ref = np.zeros_like(full)
        ref[y0:y0 + d.shape[0], x0:x0 + d.shape[1]] = d
        assert np.array_equal(ref, full)
    # the zones from the crop
    ring = cv2.dilate(core.view(np.uint8), np.ones((9, 9), np.uint8)).astype(bool) & ~core
    d_rim = cv2.distanceTransform((~ring).view(np.uint8), cv2.DIST_L2, 3)
    img = rng.random((H, W)).astype(np.float32)
    out_a = [np.empty((H, W), bool), np.empty((H, W), bool), np.empty((H, W), np.uint8)]
    out_b = [np.empty((H, W), bool), np.empty((H, W), bool), np.empty((H, W), np.uint8)]
    f, width = 2.0, 11.0  # zone within 4 px, 2 px deep; core median 6 px deep; reach 9.5 px
    none = np.zeros((0, 0), bool)
    ra = refine_zones(img, d_rim, core, none, (full, 0, 0), f, width, *out_a,
                      np.empty(2 * H * W, np.float32))
    rb = refine_zones(img, d_rim, core, none, (d, y0, x0), f, width, *out_b,
                      np.empty(2 * H * W, np.float32))
    assert (ra == rb or (ra[0] != ra[0] and rb[0] != rb[0] and ra[1] == rb[1]))
    assert all(np.array_equal(a, b) for a, b in zip(out_a, out_b))
    # visible outline: distance to blocked pixels on the core's box grown by 2 f / 0.955 + 2
    blocked = (rng.random((H, W)) > 0.995).astype(np.uint8)
    blocked[0, :] = 1
    rim = ring & (rng.random((H, W)) > 0.3)
    for f in (1.0, 2.0, 4.0):
        d_full = cv2.distanceTransform(1 - blocked, cv2.DIST_L2, 3)
        want = outline_touching(core, rim, d_full, np.float32(2.0 * f))
        kx, ky, kw, kh = cv2.boundingRect(core.view(np.uint8))
        if kw == 0:
            continue
        bx0, by0, bx1, by1 = aligned_crop(kx, ky, kw, kh, core.shape, int(np.ceil(2.0 * f / 0.955)) + 2)
        d_crop = cv2.distanceTransform(1 - blocked[by0:by1, bx0:bx1], cv2.DIST_L2, 3)
        assert outline_touching(core, rim, d_crop, np.float32(2.0 * f), by0, bx0) == want


def _ring_scene(seed, size=(360, 480)):
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = rng.uniform(150, 330), rng.uniform(120, 240)
    r = np.hypot(xx - cx, yy - cy)
    core, rim = rng.uniform(20, 45), rng.uniform(6, 16)
    nir = np.full((h, w), 60.0, np.float32)
    nir[r < core] = 20.0
    band = (r >= core) & (r < core + rim)
    if seed % 2:  # a partial rim
        band &= np.arctan2(yy - cy, xx - cx) > rng.uniform(-2.5, 0.0)
    nir[band] = rng.uniform(150, 600)
    nir = cv2.GaussianBlur(nir, (0, 0), rng.uniform(1.0, 3.0))
    nir += rng.normal(0, 2.0, nir.shape).astype(np.float32)
    wl = np.zeros((h, w, 3), np.uint8)
    wl[:] = (45, 55, 130)
    if seed % 3 == 0:  # an instrument across the lesion
        x0 = int(cx + rng.uniform(-20, 20))
        wl[:, x0:x0 + 40] = (150, 150, 150)
        nir[:, x0:x0 + 40] = 8.0
    return np.maximum(nir, 0).astype(np.float32), wl


@pytest.mark.parametrize("seed", range(6))
def test_peak_fill_skipped_only_where_it_changes_nothing(seed, monkeypatch):
    # refine_rim skips the max-fill of unsupported peak pixels when no pixel
    # it reads is unsupported: forcing the fill must give the same analysis
    from nirf_overlay.processing import refine
    from nirf_overlay.processing.analysis import RimAnalyzer
    from nirf_overlay.settings import Settings

    nir, wl = _ring_scene(seed)
    a = RimAnalyzer(Settings(), mm_per_px=0.1).analyze(nir, wl)
    a = (a.rim_mask.copy(), a.fluorescence_mask.copy(), [vars(m) for m in a.rims])
    real = refine.peak_seed
    monkeypatch.setattr(refine, "peak_seed", lambda *args: real(*args) + 1)
    b = RimAnalyzer(Settings(), mm_per_px=0.1).analyze(nir, wl)
    assert np.array_equal(a[0], b.rim_mask) and np.array_equal(a[1], b.fluorescence_mask)
    assert len(a[2]) == len(b.rims)
    for ma, mb in zip(a[2], b.rims):
        mb = vars(mb)
        for k in ma:
            if isinstance(ma[k], np.ndarray):
                assert np.array_equal(ma[k], mb[k])
            elif k == "gaps":  # RimGap holds its outline points as an array
                assert [(g.start_deg, g.end_deg, g.points.tolist()) for g in ma[k]] == \
                    [(g.start_deg, g.end_deg, g.points.tolist()) for g in mb[k]]
            else:
                assert ma[k] == mb[k] or (ma[k] != ma[k] and mb[k] != mb[k]), k


# -- the kernel modules: one numba cache unit each ---------------------------------------

KERNEL_MODULES = ("pixel", "sample", "grid", "segment", "background", "refine", "width", "fit", "band")


@pytest.mark.parametrize("name", KERNEL_MODULES)
def test_kernel_module_is_self_contained(name):
    """numba re-validates a cached kernel only against its own file, so a kernel
    module may use nothing from another one (a change there would be ignored);
    numba's own extension API and llvmlite (an ``@intrinsic``'s code) are libraries."""
    import ast
    import importlib
    import inspect

    mod = importlib.import_module(f"nirf_overlay.processing._kernels.{name}")
    for node in ast.walk(ast.parse(inspect.getsource(mod))):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module in ("__future__", "numba", "numba.extending",
                                                   "llvmlite", "typing"), node.module
        elif isinstance(node, ast.Import):
            assert {a.name for a in node.names} <= {"math", "numba", "numpy"}


def test_copies_shared_by_kernel_modules_are_the_same():
    import inspect

    from nirf_overlay.processing._kernels import background, refine, segment, width

    sources = {m.__name__: inspect.getsource(m._median_f32.py_func)
               for m in (segment, background, refine, width)}
    assert len(set(sources.values())) == 1, sources.keys()
    assert refine.NO_SIGNAL == width.NO_SIGNAL < width.NO_SIGNAL_TEST


_NAN_TESTS = ("isfinite", "isnan", "isinf")


@pytest.mark.parametrize("name", KERNEL_MODULES)
def test_kernels_that_test_for_nan_keep_ieee_nan_semantics(name):
    """Full fastmath assumes no NaN and no inf, and LLVM then folds
    ``np.isfinite(x)`` to True: mean_cross_section's skip of the sections not
    found (NaN) vanished from the compiled code, a NaN section indexed the image
    at int(NaN) and a process died of SIGSEGV now and then.  A kernel whose
    source tests for NaN/inf must keep those assumptions off."""
    import importlib
    import inspect

    from numba.core.registry import CPUDispatcher

    mod = importlib.import_module(f"nirf_overlay.processing._kernels.{name}")
    for attr, kernel in vars(mod).items():
        if not isinstance(kernel, CPUDispatcher):
            continue
        src = inspect.getsource(kernel.py_func)
        if not any(t in src for t in _NAN_TESTS):
            continue
        flags = kernel.targetoptions.get("fastmath", False)
        unsafe = flags is True or (isinstance(flags, (set, frozenset)) and
                                   ({"fast", "nnan", "ninf"} & set(flags)))
        assert not unsafe, f"{name}.{attr} tests for NaN/inf under fastmath {flags}"

