"""Annotations that stay on the tissue: motion against phantom truth, the anchored plane."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

from nirf_overlay.phantom import Phantom, PhantomParams, load_truth, motion_between, save_truth
from nirf_overlay.processing.follow import MotionHistory
from nirf_overlay.processing.motion import FrameMotion, MotionEstimator, transform_points
from nirf_overlay.processing.pipeline import Pipeline
from nirf_overlay.processing.plane_anchor import PlaneAnchor, inside_fraction
from nirf_overlay.settings import Settings

SIZE = (640, 512)
#: points spread over the picture, where the tracking error is measured
GRID = np.array([[x, y] for x in np.linspace(40, SIZE[0] - 40, 7)
                 for y in np.linspace(40, SIZE[1] - 40, 6)])


def _error_px(h_est, h_true) -> float:
    """Median distance (px) between where two motions put the grid points."""
    return float(np.median(np.linalg.norm(transform_points(h_est, GRID)
                                          - transform_points(h_true, GRID), axis=1)))


def test_truth_carries_the_image_from_world_transform(tmp_path):
    ph = Phantom(PhantomParams(seed=4, size=(160, 128)))
    truths = [ph.frame(i).truth for i in (0, 7)]
    for i, t in zip((0, 7), truths):
        np.testing.assert_allclose(t.transform, ph.transform(i))
    # the world point under a view pixel of frame 0 is where motion_between puts it in frame 7
    M = motion_between(truths[0], truths[1])
    w0 = np.linalg.solve(np.vstack([truths[0].transform, [0, 0, 1]]), [50.0, 60.0, 1.0])
    np.testing.assert_allclose(M @ [50.0, 60.0, 1.0], np.append(truths[1].transform @ w0, 1.0),
                               atol=1e-9)
    save_truth(tmp_path / "t.npz", truths)
    back = load_truth(tmp_path / "t.npz")
    np.testing.assert_allclose(back[1].transform, truths[1].transform)


@pytest.mark.parametrize("seed, overrides", [
    (13, {}),
    (29, {"fps": 15.0, "breathing_mm": 3.0, "drift_mm": 4.0}),  # twice the motion per frame
])
def test_tracking_error_with_the_instrument_passing(seed, overrides):
    ph = Phantom(PhantomParams(seed=seed, size=SIZE, **overrides))
    est = MotionEstimator()
    first = None
    acc = np.eye(3)
    acc_err, step_err, with_tool = [], [], 0
    prev = None
    for i in range(60):
        f = ph.frame(i)
        m = est.update(f.wl)
        with_tool += bool(f.truth.instrument_mask.any())
        if first is None:
            assert not m.ok  # no previous frame
            first = prev = f.truth
            continue
        assert m.ok, f"frame {i}: confidence {m.confidence:.2f}"
        step_err.append(_error_px(m.h, motion_between(prev, f.truth)))
        acc = m.h @ acc
        acc_err.append(_error_px(acc, motion_between(first, f.truth)))
        prev = f.truth
    assert with_tool >= 20  # the instrument is in the picture for a good part of it
    assert np.median(step_err) <= 0.5 and max(step_err) <= 1.5
    # the target: <= 2 px median, here accumulated over the whole run
    assert np.median(acc_err) <= 2.0 and max(acc_err) <= 3.0


def test_tracking_through_haze():
    """A smoke-like veil (half the contrast, lifted to grey) over some frames still tracks."""
    ph = Phantom(PhantomParams(seed=31, size=SIZE))
    est = MotionEstimator()
    acc, first = np.eye(3), None
    errs = []
    for i in range(40):
        f = ph.frame(i)
        wl = f.wl
        if 10 <= i < 30:
            k = 0.6 * min(1.0, (i - 9) / 5)  # thickening smoke
            wl = cv2.addWeighted(wl, 1 - k, np.full_like(wl, 190), k, 0)
        m = est.update(wl)
        if first is None:
            first = f.truth
            continue
        assert m.ok, f"frame {i}"
        acc = m.h @ acc
        errs.append(_error_px(acc, motion_between(first, f.truth)))
    assert np.median(errs) <= 2.0


def test_a_cut_is_not_ok_and_a_reset_starts_again():
    a = Phantom(PhantomParams(seed=3, size=SIZE))
    b = Phantom(PhantomParams(seed=8, size=SIZE))
    est = MotionEstimator()
    assert not est.update(a.frame(0).wl).ok
    assert est.update(a.frame(1).wl).ok
    cut = est.update(b.frame(0).wl)  # another view entirely
    assert not cut.ok and cut.confidence < 0.35
    np.testing.assert_allclose(cut.matrix, np.eye(3)[:2])
    assert est.update(b.frame(1).wl).ok  # tracking starts again from the new view
    est.reset()
    assert not est.update(b.frame(2).wl).ok


def test_the_pipeline_estimates_motion_once_per_frame_for_every_consumer():
    ph = Phantom(PhantomParams(seed=6, size=(320, 256)))
    pipe = Pipeline(None, ph.calibration())
    results = [pipe.process(ph.frame(i)) for i in range(3)]
    assert all(isinstance(r.motion, FrameMotion) for r in results)
    assert not results[0].motion.ok and results[1].motion.ok and results[2].motion.ok
    assert all("motion" in r.stage_ms for r in results)
    true = motion_between(ph.frame(1).truth, ph.frame(2).truth)
    assert np.abs(results[2].motion.h - true)[:2, 2].max() < 1.0


# -- the anchored plane ---------------------------------------------------------------------
def _squares(truth, side_px):
    """A square on the best-filled piece of rim at this frame, and one beside it on clean
    parenchyma (outwards along the lesion's radius, >= 2.5 mm from any fluorescence)."""
    rim = truth.rim_mask
    h, w = rim.shape
    fill = cv2.boxFilter(rim.astype(np.float32), -1, (int(side_px), int(side_px)))
    edge = int(3 * side_px)  # room for the motion
    fill[:edge] = fill[-edge:] = 0
    fill[:, :edge] = fill[:, -edge:] = 0
    fill[cv2.dilate(truth.instrument_mask.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0] = 0
    y, x = np.unravel_index(np.argmax(fill), fill.shape)
    assert fill[y, x] > 0.3
    les = min((lt for lt in truth.lesions if lt.rim_area_px > 0),
              key=lambda lt: np.hypot(lt.center_xy[0] - x, lt.center_xy[1] - y))
    d = np.array([x - les.center_xy[0], y - les.center_xy[1]])
    d /= np.linalg.norm(d)
    far = cv2.distanceTransform(1 - (truth.rim_mask | truth.distractor_mask).astype(np.uint8),
                                cv2.DIST_L2, 5) * truth.mm_per_px
    half = side_px / 2
    beside = None
    for k in np.arange(1.0, 8.0, 0.25):
        c = np.array([x, y], float) + d * (half + k / truth.mm_per_px)
        xi, yi = int(c[0]), int(c[1])
        if not (edge < xi < w - edge and edge < yi < h - edge):
            break
        if far[int(yi - half):int(yi + half) + 1, int(xi - half):int(xi + half) + 1].min() >= 2.5:
            beside = c
            break
    assert beside is not None

    def square(c):
        cx, cy = float(c[0]), float(c[1])
        return [[cx - half, cy - half], [cx + half, cy - half], [cx + half, cy + half],
                [cx - half, cy + half]]

    return square((x, y)), square(beside)


def _flag_rate(ph, polygon, n):
    s = Settings()
    s.plane.polygon = polygon
    pipe = Pipeline(s, ph.calibration())
    res = [pipe.process(ph.frame(i)).plane for i in range(n)]
    assert all(p.known for p in res)  # tracked all along: never unknown here
    return float(np.mean([p.flagged for p in res]))


@pytest.mark.parametrize("seed, overrides", [
    (41, {}),
    (59, {"fps": 15.0, "breathing_mm": 3.0, "drift_mm": 4.0}),
    (73, {"rotation_deg": 5.0, "breathing_period_s": 3.0}),
])
def test_anchored_plane_stays_on_the_rim_and_off_the_parenchyma(seed, overrides):
    """The issue's figure: drawn at frame 0, flagged >= 80 % of frames on a rim,
    <= 5 % beside it (a screen-fixed square: 12 % and 89 %)."""
    ph = Phantom(PhantomParams(seed=seed, size=SIZE, **overrides))
    on, beside = _squares(ph.frame(0).truth, 3.0 / ph.mm_per_px)
    assert _flag_rate(ph, on, 45) >= 0.8
    assert _flag_rate(ph, beside, 45) <= 0.05


def test_a_lost_plane_is_unknown_never_clear_until_redrawn():
    a = Phantom(PhantomParams(seed=3, size=(320, 256)))
    b = Phantom(PhantomParams(seed=8, size=(320, 256)))
    s = Settings()
    s.plane.polygon = [[100, 100], [140, 100], [140, 140], [100, 140]]
    pipe = Pipeline(s, a.calibration())
    r0 = pipe.process(a.frame(0))
    r1 = pipe.process(a.frame(1))
    assert r0.plane.known and r1.plane.known
    assert r1.frame_row()["plane_fluorescence"] in (0, 1)
    moved = np.asarray(r1.plane.polygon)
    assert not np.allclose(moved, s.plane.polygon)  # it follows the tissue
    cut = pipe.process(b.frame(0))  # a cut in the view
    for r in (cut, pipe.process(b.frame(1)), pipe.process(b.frame(2))):
        assert not r.plane.known and r.plane.lost and not r.plane.flagged
        assert r.plane.lost_reason == "tracking lost"
        row = r.frame_row()
        assert row["plane_fluorescence"] is None  # empty in metrics.csv: unknown
        assert row["plane_polygon"]  # where it was last known
    s2 = s.copy()
    s2.plane.polygon = [[90, 90], [130, 90], [130, 130], [90, 130]]
    pipe.update_settings(s2)
    assert pipe.process(b.frame(3)).plane.known  # redrawn: anchored again


def test_plane_drawn_on_a_later_frame_and_leaving_the_picture():
    hist, anchor = MotionHistory(), PlaneAnchor()
    poly = [[10, 10], [40, 10], [40, 40], [10, 40]]
    shift = np.eye(3)[:2].copy()
    shift[0, 2] = -3.0  # the tissue slides left 3 px per frame
    states = []
    for i in range(12):
        hist.add(i, FrameMotion(shift, 1.0, i > 0))
        states.append(anchor.update(i, poly, 2, hist, (200, 100)))
    assert [p.reason for p in states[:2]] == ["not anchored yet"] * 2
    assert not states[2].lost and states[2].anchor_index == 2
    np.testing.assert_allclose(states[3].polygon[0], [7, 10])
    # 10 px from the left edge at frame 2, 3 px a frame: 93 % inside at frame 6, 83 % at 7
    assert not states[6].lost and states[7].lost and states[7].reason == "left the picture"
    assert all(p.lost for p in states[7:])  # lost for good
    assert inside_fraction(np.array(poly, float), (200, 100)) == pytest.approx(1.0)
    assert inside_fraction(np.array(poly, float) - [25, 0], (200, 100)) == pytest.approx(0.5, abs=0.02)


def test_a_plane_drawn_on_an_earlier_frame_is_anchored_there():
    """The viewer anchors at the frame the polygon was drawn on, a few frames back."""
    hist, anchor = MotionHistory(), PlaneAnchor()
    shift = np.eye(3)[:2].copy()
    shift[1, 2] = 2.0
    for i in range(6):
        hist.add(i, FrameMotion(shift, 1.0, i > 0))
    p = anchor.update(5, [[10, 10], [40, 10], [40, 40]], 2, hist, (200, 100))
    np.testing.assert_allclose(p.polygon[0], [10, 16])  # 3 frames of 2 px down


def test_process_writes_the_plane_per_frame_and_unknown_as_empty(tmp_path):
    from nirf_overlay.cli import main

    settings = tmp_path / "s.json"
    # drawn on frame 3: before it the check is unknown (not anchored yet)
    settings.write_text(json.dumps({"plane": {"polygon": [[20, 20], [60, 20], [60, 60], [20, 60]],
                                              "frame": 3}}))
    out = tmp_path / "out"
    assert main(["process", "--phantom", "--seed", "9", "--size", "160x128", "--range", "0:0.2",
                 "--settings", str(settings), "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [r["plane_fluorescence"] for r in rows[:3]] == ["", "", ""]
    assert all(r["plane_fluorescence"] in ("0", "1") for r in rows[3:])
    assert rows[3]["plane_polygon"] == "20.0 20.0;60.0 20.0;60.0 60.0;20.0 60.0"
    assert rows[-1]["plane_polygon"] != rows[3]["plane_polygon"]  # it moved with the tissue


def test_a_lagged_rim_mask_is_moved_to_the_frame_shown():
    """The live display's async analysis is frames old: its rim mask (like its outlines)
    is moved by the motion since its frame, so it overlaps the shown frame's rim
    better than the rim of the frame it was analysed on."""
    from nirf_overlay.evaluate import dice

    ph = Phantom(PhantomParams(seed=41, size=SIZE, fps=10.0))  # 3x the motion per frame
    frames = [ph.frame(i) for i in range(36)]
    pipe = Pipeline(calibration=ph.calibration(), async_analysis=True)
    shown, own = [], []
    try:
        for f in frames:  # unpaced: the analysis thread falls behind
            r = pipe.process(f)
            a = r.analysis_index
            if a is None or a == r.index or r.rim_mask is None:
                continue
            mask = r.rim_mask > 0
            if not (frames[a].truth.rim_mask.any() and f.truth.rim_mask.any()):
                continue
            shown.append(dice(mask, f.truth.rim_mask))
            own.append(dice(mask, frames[a].truth.rim_mask))
    finally:
        pipe.close()
    assert len(shown) >= 5, "the analysis never lagged"
    assert np.mean(shown) > np.mean(own) + 0.01


def test_a_plane_cleared_is_gone_at_once_even_while_the_analysis_lags():
    """The live display's async analysis is frames old: after the user clears the plane,
    an analysis of a frame from before the clear must not bring the plane, its flag or its
    band back (a stale picture shown as live)."""
    ph = Phantom(PhantomParams(seed=41, size=SIZE, fps=10.0))
    frames = [ph.frame(i) for i in range(30)]
    w, h = SIZE
    settings = Settings()
    settings.plane.polygon = [[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]]  # the whole view
    pipe = Pipeline(settings=settings, calibration=ph.calibration(), async_analysis=True)
    lagged_after_clear = 0
    try:
        for f in frames[:15]:
            pipe.process(f)
        settings.plane.polygon = []
        pipe.update_settings(settings)
        for f in frames[15:]:  # unpaced: the analysis thread is behind, its results older
            r = pipe.process(f)
            if r.analysis_index is not None and r.analysis_index < 15:
                lagged_after_clear += 1
            assert r.plane.polygon is None and not r.plane.flagged, (r.index, r.plane)
    finally:
        pipe.close()
    assert lagged_after_clear >= 1, "no analysis from before the clear was shown after it"
