"""The phantom procedure, its truth, its source and make-sample, checked against known physics."""

import json
import os
import time

import cv2
import numpy as np
import pytest

from nirf_overlay.errors import NirfError
from nirf_overlay.phantom import (
    LABEL_BITS, LesionTruth, Phantom, PhantomParams, Truth, load_truth, save_truth,
)

SIZE = (320, 180)


@pytest.fixture(scope="module")
def ph():
    # three lesions, one of them incomplete, a duct and a gallbladder
    return Phantom(PhantomParams(seed=4, size=SIZE, n_lesions=3, gallbladder=True, gain_step_s=1.0))


def _normalised(ph, pair):
    """What a correct normalisation step gives: (raw - dark) / flat / gain ratio."""
    p = ph.params
    k = (pair.gain / p.gain_ref) * (pair.exposure_ms / p.exposure_ref_ms)
    return (pair.nir.astype(np.float64) - ph.dark_frame()) / ph.flat_field() / k


# -- determinism, types ---------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 7])
def test_deterministic_per_seed(seed):
    a = Phantom(PhantomParams(seed=seed, size=(160, 96))).frame(11)
    b = Phantom(PhantomParams(seed=seed, size=(160, 96))).frame(11)
    c = Phantom(PhantomParams(seed=seed + 1, size=(160, 96))).frame(11)
    assert np.array_equal(a.wl, b.wl) and np.array_equal(a.nir, b.nir)
    assert np.array_equal(a.truth.labels, b.truth.labels)
    assert a.truth.tbr == b.truth.tbr or (np.isnan(a.truth.tbr) and np.isnan(b.truth.tbr))
    assert not np.array_equal(a.nir, c.nir)


def test_same_scene_at_every_size():
    """A seed is a procedure: a larger render shows the same lesions at the same place."""
    small = Phantom(PhantomParams(seed=5, size=(320, 180))).frame(3).truth
    large = Phantom(PhantomParams(seed=5, size=(640, 360))).frame(3).truth
    assert len(small.lesions) == len(large.lesions)
    for s, l in zip(small.lesions, large.lesions):
        assert s.rim_width_mm == l.rim_width_mm
        assert abs(s.center_xy[0] * 2 - l.center_xy[0]) < 3 and abs(s.center_xy[1] * 2 - l.center_xy[1]) < 3
        assert l.tbr == pytest.approx(s.tbr, rel=0.05)


@pytest.mark.parametrize("size", [(160, 96), (321, 181)])
def test_types_shapes_bit_depth(size):
    ph = Phantom(PhantomParams(seed=1, size=size))
    w, h = size
    pair = ph.frame(0)
    assert pair.wl.shape == (h, w, 3) and pair.wl.dtype == np.uint8
    assert pair.nir.shape == (h, w) and pair.nir.dtype == np.uint16
    assert pair.nir_bits == 12 and pair.nir.max() <= 4095
    assert pair.size == (w, h) and pair.gain == 1.0 and pair.exposure_ms == ph.params.exposure_ms
    dark, flat = ph.dark_frame(), ph.flat_field()
    assert dark.dtype == np.uint16 and dark.shape == (h, w)
    assert 60 <= np.median(dark) <= 200
    assert flat.dtype == np.float32 and flat.shape == (h, w)
    assert flat.mean() == pytest.approx(1.0, abs=1e-4)
    assert flat[h // 2, w // 2] > 1.0 > flat[0, 0]  # vignetting: bright centre, dark corners
    cal = ph.calibration()
    assert cal.mm_per_px == pytest.approx(ph.params.fov_mm / w)
    assert cal.frame_size == (w, h) and np.array_equal(cal.dark, dark.astype(np.float32))
    cal.check_size((w, h))
    t = pair.truth
    assert isinstance(t, Truth) and all(isinstance(lt, LesionTruth) for lt in t.lesions)
    for name in ("rim_mask", "core_mask", "duct_mask", "gallbladder_mask", "distractor_mask",
                 "instrument_mask", "specular_mask"):
        m = getattr(t, name)
        assert m.dtype == bool and m.shape == (h, w), name


def test_tiny_frames_still_render():
    """Far below 2 px per mm a rim can be thinner than a pixel: no rim, but no NaNs either."""
    for size in ((32, 32), (64, 48)):
        ph = Phantom(PhantomParams(seed=3, size=size, n_lesions=3))
        pair = ph.frame(0)
        assert np.isfinite(ph.signal(0)).all() and pair.nir.max() <= 4095
        assert np.median(pair.nir.astype(float) - ph.dark_frame()) > 0  # parenchyma, not garbage


def test_invalid_params_are_one_line_errors():
    with pytest.raises(NirfError, match="size"):
        Phantom(PhantomParams(size=(8, 8)))
    with pytest.raises(NirfError, match="tbr"):
        Phantom(PhantomParams(tbr=(0.5, 3.0)))


# -- truth against the rendered signal -------------------------------------------
def test_truth_matches_noise_free_signal(ph):
    for i in (0, 17, 40):
        sig = ph.signal(i)
        t = ph.frame(i).truth
        rim, core, ring = t.rim_mask, t.core_mask, t.ring_mask
        assert rim.any() and core.any() and ring.any()
        # masks are disjoint where they must be
        assert not (rim & t.distractor_mask).any() and not (rim & core).any()
        assert not (rim & t.instrument_mask).any() and not (ring & t.distractor_mask).any()
        B = float(np.median(sig[ring]))
        assert t.background_intensity == pytest.approx(B, rel=0.08)
        assert float(sig[rim].mean()) / B == pytest.approx(t.tbr, rel=0.08)
        assert float(np.median(sig[core])) < 0.75 * B  # hypofluorescent core
        assert float(np.median(sig[t.instrument_mask])) < 0.2 * B
        if t.duct_mask.any():
            assert float(sig[t.duct_mask].mean()) > 3 * B  # bright, but not a rim
        for lt in t.lesions:
            assert lt.tbr == pytest.approx(lt.target_intensity / lt.background_intensity)


def test_truth_consistent_with_noisy_frame(ph):
    """The normalised noisy frame averages to the truth's T and B on the truth's masks;
    the truth of another (moved) frame does not fit."""
    i = 30
    pair = ph.frame(i)
    t = pair.truth
    norm = _normalised(ph, pair)
    assert norm[t.rim_mask].mean() == pytest.approx(t.target_intensity, rel=0.03)
    assert np.median(norm[t.ring_mask]) == pytest.approx(t.background_intensity, rel=0.05)
    other = ph.frame(i + 45).truth  # 1.5 s later: breathing and drift have moved everything
    assert norm[other.rim_mask].mean() < 0.9 * t.target_intensity


def test_lesion_geometry_matches_truth():
    """Rim width from the truth mask (twice the distance to its edge along the medial axis)."""
    from skimage.morphology import skeletonize

    # no instrument: a rim cut by the shaft grows spurs in its medial axis
    ph = Phantom(PhantomParams(seed=4, size=SIZE, n_lesions=3, gallbladder=True, instrument=False))
    t = ph.frame(0).truth
    checked = 0
    for lt in t.lesions:
        if lt.rim_area_px == 0:
            continue
        ids = ph.scene.ids  # world label of this lesion's rim, warped like the truth
        world = ((ids & 15) == lt.id).astype(np.uint8)
        M = ph.transform(0)
        rim = cv2.warpAffine(world, M, SIZE, flags=cv2.INTER_NEAREST) & t.rim_mask
        dist = cv2.distanceTransform(rim.astype(np.uint8), cv2.DIST_L2, 5)
        skel = skeletonize(rim.astype(bool))
        width_px = float(np.median(2 * dist[skel]))
        expect_px = lt.rim_width_mm / t.mm_per_px
        assert width_px == pytest.approx(expect_px, rel=0.2, abs=1.2), lt
        checked += 1
    assert checked >= 2
    arcs = [lt.completeness for lt in t.lesions]
    assert min(arcs) >= 0.5 and max(arcs) <= 1.0


def test_tbr_spans_the_published_range():
    drawn, observed = [], []
    for seed in range(12):
        ph = Phantom(PhantomParams(seed=seed, size=(160, 96), instrument=False, motion=0.0))
        t = ph.frame(0).truth
        for lt in t.lesions:
            assert 2.0 <= lt.target_tbr <= 18.0
            drawn.append(lt.target_tbr)
            observed.append(lt.tbr)
    drawn, observed = np.array(drawn), np.array(observed)
    assert drawn.min() < 4 and drawn.max() > 10  # low (after chemotherapy) and high contrast
    # with a static camera and no instrument the observed TBR is what was drawn (up to the
    # part of a background ring the frame edge cuts off)
    rel = np.abs(observed / drawn - 1)
    assert np.median(rel) < 0.01 and rel.max() < 0.12


# -- camera (gain, noise, speculars) ---------------------------------------------
def test_gain_step_in_raw_counts_and_pair(ph):
    before, after = ph.frame(28), ph.frame(31)  # step at 1.0 s, 30 fps
    assert before.gain == 1.0 and after.gain == 2.0
    assert before.truth.gain == 1.0 and after.truth.gain == 2.0
    dark = ph.dark_frame().astype(np.float64)
    rim = before.truth.rim_mask & after.truth.rim_mask
    raw_ratio = (after.nir[rim] - dark[rim]).mean() / (before.nir[rim] - dark[rim]).mean()
    assert raw_ratio == pytest.approx(2.0, rel=0.1)
    # the truth is in normalised counts: unchanged by the step
    assert after.truth.target_intensity == pytest.approx(before.truth.target_intensity, rel=0.05)


def test_noise_is_shot_plus_read_noise():
    """Frame-to-frame differences of a static scene have the variance the camera model says:
    shot noise (Poisson in electrons) plus read noise, scaled by the gain; nothing else."""
    p = PhantomParams(seed=8, size=SIZE, motion=0.0, instrument=False, gain_step_s=None)
    ph = Phantom(p)
    a, b = ph.frame(3), ph.frame(4)
    sig = ph.signal(3)
    assert np.array_equal(sig, ph.signal(4))  # static: only the noise differs
    ke, g = p.electrons_per_count, p.gain / p.gain_ref
    electrons = sig * ph.flat_field() * (p.exposure_ms / p.exposure_ref_ms) * ke
    for lo, hi in ((15, 40), (40, 80), (200, 4000)):  # parenchyma, brighter, rims and bile
        sel = (electrons >= lo) & (electrons < hi) & (a.nir < 4095) & (b.nir < 4095)
        if sel.sum() < 500:
            continue
        d = a.nir[sel].astype(np.float64) - b.nir[sel]
        expect = 2 * (electrons[sel] + p.read_noise_e ** 2).mean() * (g / ke) ** 2 + 2 / 12  # + rounding
        assert d.var() == pytest.approx(expect, rel=0.1), (lo, hi)
        assert abs(d.mean()) < 3 * d.std() / np.sqrt(sel.sum())
    # and the dark-subtracted, flat-corrected mean is the noise-free signal
    norm = _normalised(ph, a)
    bright = electrons > 100
    assert norm[bright].mean() == pytest.approx(sig[bright].mean(), rel=0.01)


def test_specular_only_in_white_light():
    ph = Phantom(PhantomParams(seed=2, size=SIZE, n_speculars=(25, 30)))
    pair = ph.frame(0)
    spec = pair.truth.specular_mask
    assert spec.sum() > 20
    assert pair.wl[spec].min() >= 230  # saturated white in WL
    sig = ph.signal(0)
    B = pair.truth.background_intensity if pair.truth.lesions else ph.params.background
    assert np.median(sig[spec]) < 3 * B  # nothing special in NIR


# -- motion and instrument -------------------------------------------------------
def test_motion_moves_scene_and_truth_together(ph):
    a, b = ph.frame(0), ph.frame(60)
    ca = np.argwhere(a.truth.core_mask).mean(0)
    cb = np.argwhere(b.truth.core_mask).mean(0)
    assert np.hypot(*(ca - cb)) > 2  # pixels: breathing and drift
    static = Phantom(PhantomParams(seed=4, size=SIZE, n_lesions=3, motion=0.0, instrument=False))
    sa, sb = static.frame(0).truth, static.frame(60).truth
    assert np.array_equal(sa.rim_mask, sb.rim_mask)


@pytest.mark.parametrize("motion", [0.0, 1.0, 2.0])
def test_what_is_placed_in_view_stays_in_view(motion):
    """Lesions and distractors are placed inside ``Motion.always_in_view``: breathing,
    drift, rotation and zoom never carry that rectangle out of the frame."""
    from nirf_overlay.phantom.motion import Motion

    w, h = SIZE
    for seed in range(6):
        p = PhantomParams(seed=seed, size=SIZE, motion=motion).validate()
        m = Motion(p, np.random.default_rng([seed, 2]))
        x0, x1, y0, y1 = m.always_in_view(0.0)
        corners = np.array([[x0, y0, 1], [x1, y0, 1], [x0, y1, 1], [x1, y1, 1]], float)
        for i in range(0, 20 * int(p.fps), 5):  # 20 s: several breaths and drift periods
            M, scale = m.affine(i / p.fps)
            v = corners @ M.T
            assert v[:, 0].min() >= -1e-6 and v[:, 0].max() <= w + 1e-6, (seed, i)
            assert v[:, 1].min() >= -1e-6 and v[:, 1].max() <= h + 1e-6, (seed, i)
            assert abs(scale - 1) <= p.scale_amplitude * motion + 1e-12


def test_instrument_comes_in_from_an_edge_and_hides_the_truth():
    ph = Phantom(PhantomParams(seed=6, size=SIZE))
    for i in (0, 40, 80):
        mask, pose = ph.instrument.at(i / ph.fps)
        x0, y0, x1, y1 = pose.box
        assert mask.any() and mask[y0:y1, x0:x1].sum() == mask.sum()  # all inside its box
        assert mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any()
        t = ph.frame(i).truth
        assert np.array_equal(t.instrument_mask, mask)  # nothing else is drawn over it
        assert not (t.instrument_mask & (t.rim_mask | t.core_mask | t.ring_mask)).any()
    bare = Phantom(PhantomParams(seed=6, size=SIZE, instrument=False))
    assert bare.instrument is None and not bare.frame(0).truth.instrument_mask.any()


# -- the truth sidecar ------------------------------------------------------------
def test_truth_sidecar_round_trip(tmp_path, ph):
    truths = [ph.frame(i).truth for i in (0, 1)]
    save_truth(tmp_path / "t.npz", truths, params=ph.params)
    back = load_truth(tmp_path / "t.npz")
    assert len(back) == 2
    for a, b in zip(truths, back):
        assert np.array_equal(a.labels, b.labels) and a.gain == b.gain
        assert b.tbr == pytest.approx(a.tbr) and len(a.lesions) == len(b.lesions)
        assert b.lesions[0].rim_width_mm == a.lesions[0].rim_width_mm
    assert set(LABEL_BITS) >= {"rim", "core", "duct", "gallbladder", "instrument", "specular"}


# -- the source ------------------------------------------------------------------------
def test_phantom_source_as_fast_as_possible():
    from nirf_overlay.sources import SourceSpec, open_source

    spec = SourceSpec(phantom=True, seed=3, size=(160, 96), fps=20.0,
                      options={"frames": 25, "loop_frames": 10})
    with open_source(spec) as src:
        assert src.info.frame_count == 25 and not src.info.live and src.info.seekable
        assert src.info.nir_bits == 12 and src.info.size == (160, 96)
        pairs = list(src)
        assert [p.index for p in pairs] == list(range(25))
        assert src.read() is None and src.stats.delivered == 25
        # ping-pong loop: 0..9, 8..1, 0.. - never a jump in the motion
        loop = [p.meta["loop_index"] for p in pairs]
        assert loop[:12] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 8, 7]
        assert np.array_equal(pairs[9].nir, pairs[11].nir) is False  # 9 vs 7
        assert np.array_equal(pairs[7].nir, pairs[11].nir)
        assert pairs[3].wl_time == pytest.approx(3 / 20.0)
        # rendered in two threads, yet every frame is the one frame(i) renders alone
        alone = Phantom(src.params)
        for i in range(10):
            ref = alone.frame(i)
            assert np.array_equal(pairs[i].nir, ref.nir) and np.array_equal(pairs[i].wl, ref.wl)
            assert np.array_equal(pairs[i].truth.labels, ref.truth.labels)
        with pytest.raises(ValueError):
            pairs[0].nir[0, 0] = 1  # loop buffers are shared: read-only
        # the gain step was moved inside the 10-frame loop
        assert {p.gain for p in pairs} == {1.0, 2.0}
        src.seek(20)
        assert src.read().index == 20
        cal = src.own_calibration()
        assert cal.mm_per_px == pytest.approx(75.0 / 160)


def test_phantom_source_live_newest_wins():
    from nirf_overlay.sources import SourceSpec, open_source

    fps = 25.0
    spec = SourceSpec(phantom=True, seed=3, size=(160, 96), fps=fps, realtime=True,
                      options={"loop_frames": 8})
    with open_source(spec) as src:
        assert src.info.live and src.info.frame_count is None
        assert src.wait_ready(timeout=60)
        first = src.read(timeout=10)
        t0 = time.monotonic()
        seen = [first.index]
        while time.monotonic() - t0 < 0.6:
            seen.append(src.read(timeout=10).index)
        elapsed = time.monotonic() - t0
        # paced: never faster than the frame rate (an upper bound holds on a busy machine)
        assert len(seen) - 1 <= elapsed * fps + 2
        assert seen == sorted(seen) and len(set(seen)) == len(seen)  # never the same pair twice
        # newest wins: after a pause the next pair is a later one, the rest counted as dropped
        dropped = src.stats.dropped
        time.sleep(0.4)
        nxt = src.read(timeout=10)
        assert nxt.index > seen[-1] + 1 and src.stats.dropped > dropped
        assert nxt.arrival >= nxt.wl_time
        with pytest.raises(TimeoutError):
            src.read(timeout=0.0)
    assert src.read(timeout=0.1) is None  # closed


# -- make-sample -------------------------------------------------------------------------
def _read_all(path, gray16=False):
    params = [cv2.CAP_PROP_CONVERT_RGB, 0] if gray16 else []
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, params)
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    return frames


def test_make_sample_round_trip(tmp_path):
    from nirf_overlay.cli import main
    from nirf_overlay.phantom import PhantomParams

    out = tmp_path / "rec"
    rc = main(["make-sample", "--out", str(out), "--name", "t", "--size", "160x96", "--seconds", "1",
               "--fps", "8", "--seed", "6", "--set", "n_lesions=2", "--no-progress"])
    assert rc == 0
    ph = Phantom(PhantomParams(seed=6, size=(160, 96), fps=8.0, n_lesions=2, gain_step_s=0.5))
    nir = _read_all(out / "t_nir.mkv", gray16=True)
    wl = _read_all(out / "t_wl.mp4")
    assert len(nir) == len(wl) == 8
    for i in (0, 5):
        ref = ph.frame(i)
        assert nir[i].dtype == np.uint16 and np.array_equal(nir[i], ref.nir)  # lossless
        assert wl[i].shape == ref.wl.shape and np.abs(wl[i].astype(int) - ref.wl).mean() < 8
    prof = json.loads((out / "calibration" / "profile.json").read_text())
    assert prof["schema_version"] == 2 and prof["frame_size"] == [160, 96]
    assert prof["mm_per_px"] == pytest.approx(75.0 / 160) and prof["gain_ref"] == 1.0
    import tifffile

    dark = tifffile.imread(out / "calibration" / prof["dark"])
    flat = tifffile.imread(out / "calibration" / prof["flat"])
    assert dark.dtype == np.uint16 and np.array_equal(dark, ph.dark_frame())
    assert flat.dtype == np.float32 and flat.mean() == pytest.approx(1.0, abs=1e-4)
    truths = load_truth(out / "t_truth.npz")
    assert len(truths) == 8 and [t.gain for t in truths] == [1.0] * 4 + [2.0] * 4
    assert np.array_equal(truths[5].labels, ph.frame(5).truth.labels)
    lines = (out / "t_truth_lesions.csv").read_text().splitlines()
    assert lines[0].startswith("frame,time_s,lesion_id") and len(lines) == 1 + 8 * 2
    # regenerating gives the same bytes (so the bundled sample is reproducible)
    again = tmp_path / "again"
    assert main(["make-sample", "--out", str(again), "--name", "t", "--size", "160x96", "--seconds", "1",
                 "--fps", "8", "--seed", "6", "--set", "n_lesions=2", "--no-progress"]) == 0
    for f in ("t_wl.mp4", "t_nir.mkv", "t_truth.npz", "t_truth_frames.csv", "calibration/dark.tiff",
              "calibration/flat.tiff"):
        assert (out / f).read_bytes() == (again / f).read_bytes(), f
    # into the same directory, even the profile keeps its bytes (an unchanged profile keeps
    # its date, here one long past)
    path = out / "calibration" / "profile.json"
    old = json.loads(path.read_text())
    path.write_text(path.read_text().replace(old["created"], "2000-01-01T00:00:00+00:00"))
    profile = path.read_bytes()
    assert main(["make-sample", "--out", str(out), "--name", "t", "--size", "160x96", "--seconds", "1",
                 "--fps", "8", "--seed", "6", "--set", "n_lesions=2", "--no-progress"]) == 0
    assert path.read_bytes() == profile


@pytest.mark.parametrize("argv, msg", [
    (["--size", "161x96"], "even"),
    (["--set", "bogus=1"], "not a phantom parameter"),
    (["--set", "tbr=1"], "lo,hi"),
    (["--set", "tbr=1,3"], "tbr"),
    (["--set", "n_lesions=abc"], "an integer or none"),
    (["--seconds", "0"], "seconds"),
])
def test_make_sample_bad_input(tmp_path, capsys, argv, msg):
    from nirf_overlay.cli import main

    try:
        rc = main(["make-sample", "--out", str(tmp_path), "--size", "64x48", "--seconds", "0.2",
                   "--no-progress", *argv])
    except SystemExit as e:  # refused by the option's own type, at parse time
        rc = e.code
    err = capsys.readouterr().err.strip()
    assert rc == 2 and msg in err and len(err.splitlines()) == 1
    assert not os.path.exists(tmp_path / "sample_wl.mp4")


def test_bundled_sample_matches_its_generator():
    """The shipped sample is what `nirf-overlay make-sample` makes (NIR bit-identical)."""
    from nirf_overlay.phantom import load_params
    from nirf_overlay.sources import SAMPLE_DIR, SAMPLE_NIR, SAMPLE_PROFILE, SAMPLE_WL

    total = sum(f.stat().st_size for f in SAMPLE_DIR.iterdir() if f.is_file())
    assert total < 20 * 2 ** 20
    params = load_params(SAMPLE_DIR / "sample_truth.npz")
    ph = Phantom(params)
    nir = _read_all(SAMPLE_NIR, gray16=True)
    wl = _read_all(SAMPLE_WL)
    assert len(nir) == len(wl) == int(round(3.0 * params.fps))
    for i in range(len(nir)):
        ref = ph.frame(i)
        assert np.array_equal(nir[i], ref.nir)
        err = np.abs(wl[i].astype(int) - ref.wl)  # H.264 at CRF 16
        assert err.mean() < 6 and err[ref.truth.instrument_mask].mean() < 6
    prof = json.loads(SAMPLE_PROFILE.read_text())
    assert prof["frame_size"] == list(params.size)
    assert prof["mm_per_px"] == pytest.approx(ph.mm_per_px)
    truths = load_truth(SAMPLE_DIR / "sample_truth.npz")
    assert {t.gain for t in truths} == {1.0, 2.0}  # the auto-gain step is in it
    assert len({len(t.lesions) for t in truths}) == 1 and len(truths[0].lesions) >= 2
