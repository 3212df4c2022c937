"""Pipeline glue on the phantom: outputs, NIR loss, settings hand-over, reset; settings JSON."""

import json

import numpy as np
import pytest

from nirf_overlay.errors import SettingsError
from nirf_overlay.frame import FramePair
from nirf_overlay.phantom import Phantom, PhantomParams
from nirf_overlay.processing.pipeline import Pipeline
from nirf_overlay.settings import SCHEMA_VERSION, Settings

SIZE = (320, 192)


@pytest.fixture(scope="module")
def phantom():
    return Phantom(PhantomParams(seed=3, size=SIZE, n_lesions=2, gain_step_s=None))


@pytest.fixture(scope="module")
def pairs(phantom):
    return [phantom.frame(i) for i in range(6)]


def test_results_have_the_contracted_shapes(phantom, pairs):
    pipe = Pipeline(Settings(), phantom.calibration())
    for p in pairs:
        r = pipe.process(p)
    W, H = SIZE
    assert r.composite.shape == (H, W, 3) and r.composite.dtype == np.uint8
    assert r.rim_mask.shape == (H, W) and r.rim_mask.dtype == np.uint8
    assert set(np.unique(r.rim_mask)) <= {0, 255}
    assert r.fluorescence_mask.shape == (H, W)
    assert not r.nir_lost and r.index == pairs[-1].index
    assert r.mm_per_px == pytest.approx(phantom.mm_per_px)
    assert {"normalise", "levels", "analysis", "composite", "total"} <= set(r.stage_ms)
    # the pipeline's normalised NIR is on the phantom's "normalised counts" scale
    truth = pairs[-1].truth
    assert pipe.levels.median == pytest.approx(truth.background_intensity, rel=0.25)
    # rims are found where the truth has them, and drawn: the composite differs from WL there
    rim_truth = truth.rim_mask
    assert r.rims and (r.rim_mask > 0)[rim_truth].mean() > 0.5
    diff = np.abs(r.composite.astype(int) - pairs[-1].wl.astype(int)).sum(axis=-1)
    assert diff[rim_truth].mean() > 5 * max(1.0, diff[~(r.fluorescence_mask > 0)].mean())


def test_nir_loss_shows_wl_and_resets_state(phantom, pairs):
    pipe = Pipeline(Settings(), phantom.calibration())
    pipe.process(pairs[0])
    lost = FramePair(wl=pairs[1].wl, nir=None, nir_bits=12, index=1, wl_time=1 / 30)
    r = pipe.process(lost)
    assert r.nir_lost and r.rim_mask is None and r.rims == []
    assert r.composite.shape == pairs[1].wl.shape
    assert (r.composite[r.composite.shape[0] // 2:] == pairs[1].wl[r.composite.shape[0] // 2:]).all()
    assert not pipe.normaliser._have_prev  # the temporal filter starts afresh
    r2 = pipe.process(pairs[2])
    assert not r2.nir_lost and r2.rim_mask is not None


def test_update_settings_takes_effect_at_the_next_frame(phantom, pairs):
    pipe = Pipeline(Settings(), phantom.calibration())
    pipe.process(pairs[0])
    s = Settings()
    s.set("display.mode", "wl")
    s.set("display.show_contours", False)
    pipe.update_settings(s)
    s.set("display.mode", "nir")  # the pipeline took a copy
    r = pipe.process(pairs[1])
    np.testing.assert_array_equal(r.composite, pairs[1].wl)
    assert pipe.settings.display.mode == "wl"


def test_reset_restarts_levels_and_filter(phantom, pairs):
    pipe = Pipeline(Settings(), phantom.calibration())
    for p in pairs[:3]:
        pipe.process(p)
    pipe.reset()
    pipe.process(pairs[3])
    fresh = Pipeline(Settings(), phantom.calibration())
    fresh.process(pairs[3])
    np.testing.assert_allclose(pipe.nir_normalised, fresh.nir_normalised, rtol=1e-6)
    assert pipe.levels.hi == pytest.approx(fresh.levels.hi)


def test_gain_step_does_not_move_normalised_levels():
    ph = Phantom(PhantomParams(seed=1, size=(256, 160), gain_step_s=2 / 30, motion=0.0))
    pipe = Pipeline(Settings(), ph.calibration())
    meds = []
    for i in range(5):
        p = ph.frame(i)
        pipe.process(p)
        meds.append(pipe.levels.median)
    assert ph.frame(4).gain != ph.frame(0).gain
    assert max(meds) / min(meds) < 1.05


def test_settings_json_round_trip(tmp_path):
    s = Settings()
    s.set("display.mode", "pip")
    s.set("display.colormap", "cividis")
    s.set("display.alpha", 0.5)
    s.set("levels.compression", "gamma")
    s.set("levels.roi", [10, 20, 100, 50])
    s.set("normalise.temporal_alpha", 0.7)
    s.set("display.side_by_side_right", "nir")
    path = tmp_path / "s.json"
    s.save(path)
    data = json.loads(path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION and data["levels"]["roi"] == [10, 20, 100, 50]
    assert Settings.load(path) == s


def test_settings_of_schema_1_still_load(tmp_path):
    """Presets and sessions saved by 0.1 (schema 1) load; the duct-rejection
    field they carry, which never changed an answer, is dropped."""
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"schema_version": 1,
                                "segment": {"threshold": 2.5, "max_tubularity": 0.4}}))
    s = Settings.load(path)
    assert s.segment.threshold == 2.5 and not hasattr(s.segment, "max_tubularity")
    # the same key in the current schema is an unknown field
    path.write_text(json.dumps({"schema_version": SCHEMA_VERSION,
                                "segment": {"max_tubularity": 0.4}}))
    with pytest.raises(SettingsError, match="max_tubularity"):
        Settings.load(path)


@pytest.mark.parametrize("name,value,message", [
    ("display.alpha", 1.5, "display.alpha: 1.5 is outside 0..1"),
    ("display.mode", "3d", "display.mode: '3d' is not one of wl, nir, overlay"),
    ("display.colormap", "jet", "display.colormap: 'jet' is not one of green"),
    ("normalise.temporal_alpha", 0.99, "normalise.temporal_alpha: 0.99 is outside 0..0.95"),
    ("levels.log_strength", 0, "levels.log_strength: 0 is outside 1..10000"),
    ("levels.roi", [1, 2, 3], "levels.roi: expected [x, y, w, h]"),
    ("levels.roi", [1, 2, 0, 5], "levels.roi: [1, 2, 0, 5] needs x, y >= 0 and w, h >= 1"),
    ("display.show_colorbar", "yes", "display.show_colorbar: 'yes' is not true or false"),
])
def test_settings_refuse_bad_values_naming_the_field(name, value, message):
    with pytest.raises(SettingsError) as e:
        Settings().set(name, value)
    assert str(e.value).startswith(message)


def test_settings_file_errors_are_one_line(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{"display": {"alpha": 3}}')
    with pytest.raises(SettingsError, match=r"bad.json: display.alpha: 3 is outside 0..1"):
        Settings.load(p)
    p.write_text("{nope")
    with pytest.raises(SettingsError, match="not valid JSON"):
        Settings.load(p)


@pytest.mark.parametrize("mode", ["overlay", "nir", "intensity"])
def test_fused_display_sweep_equals_separate_compositing(phantom, pairs, mode):
    from nirf_overlay.processing.composite import Compositor

    s = Settings()
    s.set("display.mode", mode)
    s.set("display.show_colorbar", True)
    pipe = Pipeline(s, phantom.calibration())
    pipe.fuse = True
    for p in pairs[:3]:
        pipe.process(p)
    prev_levels, prev_thr = pipe.levels, pipe.threshold
    r = pipe.process(pairs[3])
    ref = Compositor(ring=1).render(
        pairs[3].wl, pipe.nir_normalised, lo=prev_levels.lo, hi=prev_levels.hi, threshold=prev_thr,
        settings=s, saturated=pipe.normaliser.sat, contours=[m.contour for m in r.rims],
        plane=r.plane, gaps=[g.points for m in r.rims for g in m.gaps])
    np.testing.assert_array_equal(r.composite, ref)


def test_homography_from_calibration_is_applied(phantom, pairs):
    """NIR shifted by 6 px against WL: with the homography the rims land where the truth is."""
    import dataclasses

    dx = 6
    shifted = []
    for p in pairs[:4]:
        nir = np.zeros_like(p.nir)
        nir[:, dx:] = p.nir[:, :-dx]  # NIR camera sees the scene 6 px to the right
        shifted.append(dataclasses.replace(p, nir=nir))
    cal = phantom.calibration()
    cal.dark = np.roll(cal.dark, dx, axis=1)
    cal.flat = np.roll(cal.flat, dx, axis=1)
    cal.homography_wl_to_nir = np.array([[1, 0, dx], [0, 1, 0], [0, 0, 1]], float)
    s = Settings()
    s.set("normalise.temporal_alpha", 0.0)  # the noise estimate sees the empty strip too
    pipe = Pipeline(s, cal)
    for p in shifted:
        r = pipe.process(p)
    ref = Pipeline(s, phantom.calibration())
    for p in pairs[:4]:
        r0 = ref.process(p)
    # the warped NIR matches the unshifted one away from the uncovered strip
    W = SIZE[0]
    np.testing.assert_allclose(pipe.nir_normalised[:, : W - dx - 1], ref.nir_normalised[:, : W - dx - 1],
                               rtol=1e-4, atol=1e-3)
    truth = pairs[3].truth.rim_mask
    assert (r.rim_mask > 0)[truth].mean() > 0.5
    assert r.composite.shape == r0.composite.shape


def _wait_for(cond, timeout=20.0):
    import time

    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def _rim_rows(rims):
    return [(r.rim_id, round(r.tbr, 9), round(r.rim_thickness_px, 9), round(r.rim_area_px, 6))
            for r in rims]


def test_live_pipeline_shows_the_analysis_of_the_frame_it_names(phantom, pairs):
    """Analysis on its own thread: fed one frame per finished analysis, it sees
    every frame as the synchronous pipeline does, and each result names the
    frame it measured (rims and mask equal the synchronous ones of that frame)."""
    cal = phantom.calibration()
    sync = Pipeline(Settings(), cal)
    live = Pipeline(Settings(), cal, async_analysis=True)
    try:
        expected = {}
        for k, p in enumerate(pairs):
            r = sync.process(p)
            expected[p.index] = (_rim_rows(r.rims), r.rim_mask.copy())
            got = live.process(p)
            if k == 0:
                assert got.analysis_index is None and got.rim_mask is None and not got.rims
            else:
                assert got.analysis_index == pairs[k - 1].index
                rows, mask = expected[got.analysis_index]
                assert _rim_rows(got.rims) == rows
                assert np.array_equal(got.rim_mask, mask)
            _wait_for(lambda: len(live.analysis_durations_ms()) == k + 1)
        assert expected[pairs[-1].index][0], "the phantom's rims were found"
        assert sync.analysis_durations_ms() is None
    finally:
        live.close()


def test_analysis_thread_copies_the_lent_nir_before_it_is_overwritten(phantom, pairs):
    """The pipeline lends its filtered NIR buffer; once wait_returned() says so,
    writing into it must not change the analysis under way."""
    from nirf_overlay.processing.analysis import RimAnalyzer
    from nirf_overlay.processing.async_analysis import AsyncAnalysis

    pipe = Pipeline(Settings(), phantom.calibration())
    for p in pairs[:3]:
        pipe.process(p)
    nir, wl = pipe.nir_normalised.copy(), pairs[2].wl
    reference = RimAnalyzer(Settings(), mm_per_px=phantom.mm_per_px).analyze(nir.copy(), wl)
    worker = AsyncAnalysis(RimAnalyzer(Settings(), mm_per_px=phantom.mm_per_px))
    try:
        lent = nir.copy()
        assert worker.submit(7, lent, wl, None)
        assert not worker.submit(8, lent, wl, None)  # busy: latest wins, nothing queued
        assert worker.wait_returned(5.0)
        lent[:] = 0.0  # the next frame being filtered into the same buffer
        _wait_for(lambda: worker.latest() is not None)
        index, got = worker.latest()
        assert index == 7 and reference.rims
        assert _rim_rows(got.rims) == _rim_rows(reference.rims)
        assert np.array_equal(got.rim_mask, reference.rim_mask)
    finally:
        worker.close()
    assert worker.wait_returned(0.0)


def test_state_digest_is_equal_exactly_for_pipelines_that_carry_the_same_state(phantom, pairs):
    """batch stitches chunks when a chunk's warm-up reached the state the
    previous chunk ended in: equal digests, then equal outputs."""
    cal = phantom.calibration()
    a, b, late = Pipeline(Settings(), cal), Pipeline(Settings(), cal), Pipeline(Settings(), cal)
    for p in pairs[:4]:
        a.process(p)
        b.process(p)
    for p in pairs[2:4]:
        late.process(p)
    assert a.state_digest() == b.state_digest()
    assert late.state_digest() != a.state_digest()  # a shorter history: other filter state
    ra, rb = a.process(pairs[4]), b.process(pairs[4])
    assert np.array_equal(ra.composite, rb.composite) and np.array_equal(ra.rim_mask, rb.rim_mask)
    assert a.state_digest() == b.state_digest() != late.state_digest()
