"""Compositing: modes, colour maps, alpha ramp, saturation, outlines, plane flag, NIR loss."""

import numpy as np
import pytest

from nirf_overlay.processing.colormaps import PALETTES, colormap
from nirf_overlay.processing.composite import PIXEL_PASSES, RENDERERS, Compositor, composite
from nirf_overlay.processing.result import PlaneCheck
from nirf_overlay.settings import COLORMAPS, DISPLAY_MODES, MODES, Settings

H, W = 60, 80


def _scene(seed=0):
    rng = np.random.default_rng(seed)
    wl = rng.integers(40, 200, (H, W, 3)).astype(np.uint8)
    nir = np.full((H, W), 100.0, np.float32)  # liver background
    nir[20:40, 30:50] = 900.0  # strong fluorescence
    nir[5:10, 5:10] = 130.0  # weak, below threshold (1.6 x 100)
    return wl, nir


def _settings(**kw):
    s = Settings()
    for k, v in kw.items():
        s.set(k, v)
    return s


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cmap", COLORMAPS)
def test_every_mode_and_colormap_gives_bgr_of_wl_size(mode, cmap):
    wl, nir = _scene()
    s = _settings(**{"display.mode": mode, "display.colormap": cmap, "display.show_colorbar": True})
    out = composite(wl, nir, lo=0.0, hi=1000.0, threshold=160.0, settings=s)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    if mode == "wl":
        np.testing.assert_array_equal(out, wl)


@pytest.mark.parametrize("cmap", COLORMAPS)
@pytest.mark.parametrize("compression", ["linear", "gamma", "log"])
def test_overlay_transparent_below_threshold_and_coloured_above(cmap, compression):
    wl, nir = _scene()
    s = _settings(**{"display.colormap": cmap, "levels.compression": compression,
                     "display.alpha_floor": 0.0})
    out = composite(wl, nir, lo=0.0, hi=1000.0, threshold=160.0, settings=s)
    # background and the weak patch (below threshold) show the anatomy untouched
    np.testing.assert_array_equal(out[:20], wl[:20])
    np.testing.assert_array_equal(out[5:10, 5:10], wl[5:10, 5:10])
    # the fluorescent patch is tinted towards the colour map's colour at its level
    patch = out[22:38, 32:48].astype(int)
    base = wl[22:38, 32:48].astype(int)
    assert np.abs(patch - base).mean() > 20
    lut = colormap(cmap).astype(int)
    target = lut[200:].mean(axis=0)  # upper part of the map
    assert np.abs(patch.mean(axis=(0, 1)) - target).sum() < np.abs(base.mean(axis=(0, 1)) - target).sum()


def test_alpha_rises_with_intensity_and_never_exceeds_setting():
    wl = np.zeros((1, 256, 3), np.uint8)
    nir = np.linspace(0, 1000, 256, dtype=np.float32)[None, :]
    s = _settings(**{"display.alpha": 0.6, "display.colormap": "green",
                     "levels.compression": "linear", "display.alpha_floor": 0.0})
    out = composite(wl, nir, lo=0.0, hi=1000.0, threshold=300.0, settings=s)
    g = out[0, :, 1].astype(int)  # green over black = alpha x map's green
    assert (g[nir[0] < 299] == 0).all()
    above = g[nir[0] > 301]
    assert (np.diff(above) >= -1).all()  # rising (ties from 8-bit rounding)
    assert above.max() <= round(0.6 * 255) + 1
    assert above[-1] >= round(0.6 * colormap("green")[-1, 1]) - 1


def test_alpha_floor_hides_weak_signal_without_threshold():
    wl, nir = _scene()
    s = _settings(**{"display.alpha_floor": 0.99})
    out = composite(wl, nir, lo=0.0, hi=1000.0, threshold=None, settings=s)
    np.testing.assert_array_equal(out[22:38, 32:48], wl[22:38, 32:48])


@pytest.mark.parametrize("cmap", COLORMAPS)
def test_saturation_has_its_own_colour(cmap):
    wl, nir = _scene()
    sat = np.zeros((H, W), np.uint8)
    sat[25:30, 35:40] = 1
    s = _settings(**{"display.colormap": cmap})
    out = composite(wl, nir, lo=0.0, hi=1000.0, threshold=160.0, settings=s, saturated=sat)
    colour = np.array(PALETTES[cmap].saturation, np.uint8)
    assert (out[25:30, 35:40] == colour).all()
    # the saturation colour is not one the map itself produces
    assert np.abs(colormap(cmap).astype(int) - colour.astype(int)).sum(axis=1).min() > 60
    s.set("display.show_saturation", False)
    out2 = composite(wl, nir, lo=0.0, hi=1000.0, threshold=160.0, settings=s, saturated=sat)
    assert not (out2[25:30, 35:40] == colour).all(axis=-1).any()


def test_nir_mode_is_monochrome_and_intensity_ignores_wl():
    wl, nir = _scene()
    s = _settings(**{"display.mode": "nir"})
    out = composite(wl, nir, lo=0.0, hi=1000.0, settings=s)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    assert out[30, 40, 0] > out[0, 0, 0]
    s.set("display.mode", "intensity")
    a = composite(wl, nir, lo=0.0, hi=1000.0, settings=s)
    b = composite(255 - wl, nir, lo=0.0, hi=1000.0, settings=s)
    np.testing.assert_array_equal(a, b)


def test_side_by_side_layout_keeps_aspect():
    wl, nir = _scene()
    s = _settings(**{"display.mode": "side-by-side", "display.show_contours": False})
    out = composite(wl, nir, lo=0.0, hi=1000.0, threshold=160.0, settings=s)
    ph = round(H * (W // 2) / W)
    y0 = (H - ph) // 2
    assert (out[:y0] == 0).all() and (out[y0 + ph:] == 0).all()  # letterbox bands
    # left pane is the WL, scaled; right pane carries the fluorescence colour
    left = out[y0:y0 + ph, :W // 2].astype(int)
    assert abs(left.mean() - wl.mean()) < 10
    right = out[y0:y0 + ph, W // 2:]
    assert right[..., 1].max() > 200  # green overlay


def test_pip_inset_in_top_right_corner():
    wl = np.zeros((H * 4, W * 4, 3), np.uint8)
    nir = np.full(wl.shape[:2], 1000.0, np.float32)
    s = _settings(**{"display.mode": "pip", "display.pip_scale": 0.25, "display.alpha": 0.0})
    out = composite(wl, nir, lo=0.0, hi=1000.0, settings=s)
    # alpha 0: the main view is the (black) WL; the inset is bright NIR
    iw = round(W * 4 * 0.25)
    assert out[10:20, -iw:-10].mean() > 200
    assert out[-20:, :20].max() == 0


def test_contours_and_plane_flag_in_distinct_colours():
    wl = np.zeros((H, W, 3), np.uint8)
    nir = np.zeros((H, W), np.float32)
    rim = np.array([[10, 10], [30, 10], [30, 30], [10, 30]], np.int32)
    poly = [[45, 5], [75, 5], [75, 50], [45, 50]]
    s = _settings(**{"plane.polygon": poly, "display.colormap": "green"})
    pal = PALETTES["green"]
    quiet = composite(wl, nir, lo=0.0, hi=1.0, settings=s, contours=[rim], plane=PlaneCheck())
    flagged = composite(wl, nir, lo=0.0, hi=1.0, settings=s, contours=[rim],
                        plane=PlaneCheck(flagged=True, tbr=3.2, area_px=40))

    def has(img, colour):
        return (img == np.array(colour, np.uint8)).all(axis=-1).any()

    assert has(quiet, pal.rim) and has(quiet, pal.plane) and not has(quiet, pal.plane_flagged)
    assert has(flagged, pal.plane_flagged)
    assert len({pal.rim, pal.plane, pal.plane_flagged, pal.saturation}) == 4
    s.set("display.show_contours", False)
    assert not has(composite(wl, nir, lo=0.0, hi=1.0, settings=s, contours=[rim]), pal.rim)


def test_nir_lost_shows_white_light():
    wl, _ = _scene()
    out = composite(wl, None, lo=0.0, hi=1.0, settings=Settings())
    assert out.shape == wl.shape
    # the frame is the WL except for the "NIR signal lost" label in the corner
    assert (out[H // 2:] == wl[H // 2:]).all()


def test_ring_buffers_are_reused_in_turn():
    wl, nir = _scene()
    c = Compositor(ring=2)
    a = c.render(wl, nir, lo=0, hi=1000, settings=Settings())
    b = c.render(wl, nir, lo=0, hi=1000, settings=Settings())
    c3 = c.render(wl, nir, lo=0, hi=1000, settings=Settings())
    assert a is not b and c3 is a


@pytest.mark.parametrize("mode", ["overlay", "intensity", "nir"])
def test_pixel_pass_matches_the_blend_formula(mode):
    """The packed fixed-point table gives exactly ``(wl (256 - a) + lut a + 128) >> 8``,
    saturated pixels their colour, at a width that is not a whole number of blocks."""
    rng = np.random.default_rng(3)
    h, w = 23, 77
    wl = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    nir = (rng.random((h, w), dtype=np.float32) * 1400 - 100).astype(np.float32)
    nir[:, 40:] = 50.0  # a transparent run
    sat = (rng.random((h, w)) > 0.9).astype(np.uint8)
    s = Settings()
    s.set("display.mode", mode)
    s.set("display.alpha", 1.0)  # a = 256 at the top of the ramp
    lo, hi = 10.0, 1200.0
    c = Compositor(ring=1)
    out = c.render(wl, nir, lo=lo, hi=hi, threshold=200.0, settings=s, saturated=sat)
    n = c._lut.shape[0]
    scale = np.float32((n - 1) / (hi - lo))
    i = np.minimum(np.maximum((nir - np.float32(lo)) * scale, np.float32(0)),
                   np.float32(n - 1)).astype(np.int64)
    lut = (c._gray_lut if mode == "nir" else c._lut)[i].astype(np.int64)
    if mode == "overlay":
        a = c._alut[i].astype(np.int64)[..., None]
        ref = (wl.astype(np.int64) * (256 - a) + lut * a + 128) >> 8
    else:
        ref = lut
    ref[sat != 0] = PALETTES[s.display.colormap].saturation
    assert np.array_equal(out, ref.astype(np.uint8))


def test_pixel_pass_refuses_short_scratch():
    from nirf_overlay.processing._kernels.pixel import composite_pass, row_scratch_bytes

    wl = np.zeros((4, 40, 3), np.uint8)
    args = (wl, np.zeros((4, 40), np.float32), np.zeros((4, 40), np.uint8), np.float32(0),
            np.float32(1), np.zeros(1025, np.uint64), 5, True, True)
    with pytest.raises(ValueError, match="row_scratch_bytes"):
        composite_pass(*args, np.zeros((2, 40), np.uint8), np.zeros_like(wl))
    composite_pass(*args, np.zeros((2, row_scratch_bytes(40)), np.uint8), np.zeros_like(wl))


@pytest.mark.parametrize("mode", ["overlay", "nir", "intensity", "side-by-side", "pip"])
def test_nan_and_inf_in_nir_are_drawn_not_crashed_on(mode):
    """A NaN (e.g. from a broken calibration frame) must not index outside the
    colour table: the kernels run without bounds checks."""
    H, W = 40, 70
    wl = np.full((H, W, 3), 90, np.uint8)
    nir = np.linspace(0.0, 400.0, H * W, dtype=np.float32).reshape(H, W)
    nir[3, 5] = np.nan
    nir[10, :] = np.nan
    nir[20, 3], nir[21, 4] = np.inf, -np.inf
    s = Settings()
    s.set("display.mode", mode)
    out = Compositor().render(wl, nir, lo=0.0, hi=400.0, threshold=80.0, settings=s)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    clean = nir.copy()
    clean[~np.isfinite(clean)] = 0.0
    ref = Compositor().render(wl, clean, lo=0.0, hi=400.0, threshold=80.0, settings=s)
    finite_rows = np.isfinite(nir).all(axis=1)
    if mode == "overlay":  # pixel for pixel: every finite pixel as without the bad ones
        assert np.array_equal(out[finite_rows], ref[finite_rows])


# -- display modes: one table of names, one renderer each -----------------------------

def test_every_display_mode_has_one_renderer():
    assert list(RENDERERS) == [m.name for m in DISPLAY_MODES]
    # the modes drawn by one pixel pass (the ones the normalisation sweep can write)
    assert set(PIXEL_PASSES) <= set(RENDERERS)
    assert not RENDERERS["wl"].colour_bar  # white light alone shows no NIR levels


@pytest.mark.parametrize("mode", MODES)
def test_renderers_write_every_pixel_of_the_ring_buffer(mode):
    """Each renderer fills the whole frame: nothing of an older frame is left in the ring."""
    wl, nir = _scene(3)
    c = Compositor(ring=1)
    s = _settings(**{"display.mode": mode})
    first = c.render(wl, nir, lo=0.0, hi=1000.0, threshold=160.0, settings=s).copy()
    c.render(255 - wl, nir * 3, lo=0.0, hi=1000.0, threshold=160.0, settings=s)
    again = c.render(wl, nir, lo=0.0, hi=1000.0, threshold=160.0, settings=s)
    assert again.dtype == np.uint8 and again.shape == (H, W, 3)
    assert np.array_equal(first, again)


# -- the stage's entry checks its input once (the kernels check nothing) -------------

def _bad_inputs(shape, rng):
    h, w = shape
    wl = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    nir = rng.uniform(0, 1000, (h, w)).astype(np.float32)
    sat = np.zeros((h, w), np.uint8)
    wide_wl = rng.integers(0, 256, (h, 2 * w, 3)).astype(np.uint8)
    wide_nir = rng.uniform(0, 1000, (h, 2 * w)).astype(np.float32)
    return {
        "wl float": (dict(wl=wl.astype(np.float32)), TypeError,
                     rf"wl must be a \(H, W, 3\) uint8 array, got float32 \({h}, {w}, 3\)"),
        "wl grey": (dict(wl=wl[..., 0].copy()), ValueError,
                    rf"wl must be a \(H, W, 3\) uint8 array, got shape \({h}, {w}\)"),
        "wl RGBA": (dict(wl=np.dstack([wl, wl[..., :1]])), ValueError, r"wl must be a \(H, W, 3\)"),
        "wl strided": (dict(wl=wide_wl[:, ::2]), ValueError, r"wl must be C-contiguous"),
        "nir float64": (dict(nir=nir.astype(np.float64)), TypeError,
                        rf"nir must be a \({h}, {w}\) float32 array, got float64"),
        "nir uint16": (dict(nir=nir.astype(np.uint16)), TypeError, r"nir must be a .* float32 array"),
        "nir other size": (dict(nir=nir[:, 1:].copy()), ValueError,
                           rf"nir must be a \({h}, {w}\) float32 array, got shape \({h}, {w - 1}\)"),
        "nir strided": (dict(nir=wide_nir[:, ::2]), ValueError, r"nir must be C-contiguous"),
        "saturated bool": (dict(saturated=sat.astype(bool)), TypeError,
                           rf"saturated must be a \({h}, {w}\) uint8 array, got bool"),
        "saturated 3-D": (dict(saturated=sat[..., None]), ValueError, r"saturated must be a"),
    }, dict(wl=wl, nir=nir, saturated=sat)


CASES = list(_bad_inputs((4, 4), np.random.default_rng(0))[0])


@pytest.mark.parametrize("shape", [(H, W), (37, 53)])
@pytest.mark.parametrize("case", CASES)
def test_render_refuses_wrong_input_with_a_clear_message(shape, case):
    bad, good = _bad_inputs(shape, np.random.default_rng(21))
    change, error, message = bad[case]
    args = dict(good, **change)
    with pytest.raises(error, match=message):
        Compositor(ring=1).render(args["wl"], args["nir"], lo=0.0, hi=1000.0, settings=Settings(),
                                  saturated=args["saturated"])
    # the good inputs of that shape render
    out = Compositor(ring=1).render(good["wl"], good["nir"], lo=0.0, hi=1000.0, settings=Settings(),
                                    saturated=good["saturated"])
    assert out.shape == shape + (3,) and out.dtype == np.uint8
