"""`calibrate layout`: the insets of tower recordings the detector was not tuned on.

The recordings are the phantom seen through a tower (:mod:`nirf_overlay.phantom.tower`)
in each of its layouts, with seeds, display curves, text and frame sizes other than the
defaults, written as real H.264 (yuv420p) by ``make-sample --tower``'s writer.
"""

import json
import os

import cv2
import numpy as np
import pytest

from nirf_overlay.calibration import load_profile
from nirf_overlay.calibration.layout_detect import CUSTOM_HINT, detect_layout
from nirf_overlay.cli import main
from nirf_overlay.cli.make_sample import make_tower_recording
from nirf_overlay.phantom import PhantomParams
from nirf_overlay.phantom.tower import Tower, TowerParams
from nirf_overlay.sources.combined_frames import read_combined_frames

#: layout, tower frame, curve, phantom seed, text: none of them the defaults
CASES = {
    "side-by-side": ((1920, 1080), "log:60", 31, dict(mode_label="FLUO", text_scale=1.3)),
    "three-left": ((1280, 720), "gamma:1.8", 32, dict(wl_label="VIS", tower_name="OR 2")),
    "pip": ((1280, 720), "gamma:2.6", 33, dict(mode_label="NIR MONO", text_scale=0.8)),
    "quad": ((1600, 900), "log:15", 34, dict(clock_start_s=3600 * 23 + 59 * 60 + 58)),
}


def _tower(layout):
    size, curve, seed, text = CASES[layout]
    return Tower(TowerParams(layout=layout, size=size, curve=curve, seed=seed + 1, surround=9,
                             surround_noise=2.5, **text),
                 PhantomParams(seed=seed, fps=15.0, gain_step_s=1.0))


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    out = {}
    for layout in CASES:
        d = str(tmp_path_factory.mktemp(layout))
        tower = _tower(layout)
        s = make_tower_recording(tower, d, name="t", frames=45, crf=23, truth=False, progress=False)
        out[layout] = (s["combined"], tower)
    return out


def _close(found, truth, px=4):
    return found is not None and max(abs(a - b) for a, b in zip(found, truth)) <= px


@pytest.mark.parametrize("layout", list(CASES))
def test_the_insets_are_found_within_4_px(recordings, layout):
    path, tower = recordings[layout]
    res = detect_layout(read_combined_frames(path, count=8))
    assert res.ok, res.summary()
    assert _close(res.wl_rect, tower.rects["wl"]), (res.wl_rect, tower.rects["wl"])
    assert _close(res.nir_rect, tower.rects["nir"]), (res.nir_rect, tower.rects["nir"])
    # every inset the tower drew is found, and nothing else (the text on the surround is not one)
    assert len(res.insets) == len(tower.rects), res.summary()


@pytest.mark.parametrize("layout", ["three-left", "quad"])
def test_the_towers_colour_overlay_is_not_taken_for_white_light(recordings, layout):
    path, tower = recordings[layout]
    res = detect_layout(read_combined_frames(path, count=8))
    for role in ("overlay", "pseudo", "nir_small"):
        if role in tower.rects:
            inset = next(i for i in res.insets if _close(i.rect, tower.rects[role]))
            assert inset.role == "" and inset.kind == ("grey" if role == "nir_small" else "overlay")


def test_an_overlay_larger_than_the_white_light_is_still_not_white_light():
    # the overlay as the enlarged view: size says nothing, colour does
    tower = Tower(TowerParams(layout="three-left", curve="gamma:2.0"), PhantomParams(seed=41))
    frames = []
    for i in (0, 8, 16):
        t = tower.frame(i)
        f = t.frame.copy()
        x, y, w, h = tower.rects["nir"]
        from nirf_overlay.phantom.tower import _tower_overlay

        f[y:y + h, x:x + w] = cv2.resize(_tower_overlay(t.pair.wl, t.display_nir), (w, h))
        frames.append(f)
    res = detect_layout(frames)
    assert res.ok, res.summary()
    assert _close(res.wl_rect, tower.rects["wl"])
    assert _close(res.nir_rect, tower.rects["nir_small"])  # the one grey inset left


def test_bold_text_on_the_surround_is_not_an_inset():
    tower = Tower(TowerParams(layout="side-by-side", text_scale=2.5,
                              tower_name="OR 4  SPY-PHI  RECORDING 00:12:31"),
                  PhantomParams(seed=42))
    frames = [tower.frame(i).frame for i in (0, 10, 20)]
    res = detect_layout(frames)
    assert len(res.insets) == 2 and res.ok, res.summary()


def _area(r):
    return r[2] * r[3]


def _inter(a, b):
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(w, 0) * max(h, 0)


@pytest.mark.parametrize("layout", list(CASES))
def test_static_text_inside_an_inset_is_proposed_as_ignore_rects(recordings, layout):
    path, tower = recordings[layout]
    res = detect_layout(read_combined_frames(path, count=8))
    truth = tower.ignore_rects()
    assert res.ignore_rects
    for r in res.ignore_rects:  # nothing but text (or a covering inset) is proposed
        assert sum(_inter(r, t) for t in truth) >= 0.5 * _area(r), (r, truth)
    # the WL inset's own label is found whole
    label = tower.ignore_rects()[0]
    assert sum(_inter(label, r) for r in res.ignore_rects) >= 0.8 * _area(label)


def _two_colour_insets():
    rng = np.random.default_rng(5)
    f = np.full((720, 1280, 3), 8, np.uint8)
    tissue = np.empty((300, 400, 3), np.uint8)
    tissue[...] = (60, 80, 170)
    tissue = cv2.add(tissue, rng.integers(0, 30, tissue.shape, dtype=np.uint8))
    f[100:400, 60:460] = tissue
    f[100:400, 700:1100] = tissue[:, ::-1]
    return [f, f.copy()]


def test_two_white_light_lookalikes_are_unsure_and_name_the_options():
    res = detect_layout(_two_colour_insets())
    assert not res.ok
    assert any("look like white light" in u for u in res.unsure)
    assert res.custom_options().startswith("--layout custom --wl-rect")


def test_calibrate_layout_writes_the_profile_and_a_preview(recordings, tmp_path, capsys):
    path, tower = recordings["quad"]
    out = str(tmp_path / "tower.json")
    assert main(["calibrate", "layout", "--combined", path, "--out", out, "--frames", "6"]) == 0
    text = capsys.readouterr().out
    assert "white light" in text and "NIR" in text and "--layout custom --wl-rect" in text
    cal = load_profile(out)
    assert _close(cal.layout.wl_rect, tower.rects["wl"]) and _close(cal.layout.nir_rect, tower.rects["nir"])
    assert cal.frame_size == tuple(cal.layout.wl_rect[2:])
    assert cal.ignore_rects
    preview = cv2.imread(str(tmp_path / "tower_layout.png"))
    assert preview.shape == (900, 1600, 3)
    x, y, w, h = cal.layout.wl_rect  # the WL rectangle is drawn in green
    edge = preview[y + h // 2, x:x + 2].astype(int)
    assert (edge[:, 1] > 180).all() and (edge[:, 0] < 60).all()


def test_calibrate_layout_unsure_says_so_in_one_line_and_writes_no_profile(tmp_path, capsys):
    import subprocess

    src = str(tmp_path / "two.mp4")
    frames = _two_colour_insets() * 3
    cmd = [__import__("imageio_ffmpeg").get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f",
           "rawvideo", "-pix_fmt", "bgr24", "-s", "1280x720", "-r", "30", "-i", "-",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", src]
    subprocess.run(cmd, input=np.stack(frames).tobytes(), check=True)
    out = str(tmp_path / "p.json")
    assert main(["calibrate", "layout", "--combined", src, "--out", out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unsure" in err[0] and CUSTOM_HINT.split(" X")[0] in err[0]
    assert not os.path.exists(out)
    assert os.path.exists(str(tmp_path / "p_layout.png"))


def test_make_sample_tower_writes_a_recording_and_its_truth(tmp_path, capsys):
    out = str(tmp_path)
    assert main(["make-sample", "--tower", "pip", "--out", out, "--name", "r", "--seconds", "0.2",
                 "--seed", "9", "--curve", "log:20", "--no-progress"]) == 0
    doc = json.load(open(os.path.join(out, "r_tower.json")))
    assert doc["layout"] == "pip" and doc["curve"] == "log:20"
    cap = cv2.VideoCapture(os.path.join(out, "r_tower.mp4"))
    ok, f = cap.read()
    assert ok and f.shape == (720, 1280, 3)
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    from nirf_overlay.phantom import load_truth

    truth = load_truth(os.path.join(out, "r_truth.npz"))
    assert len(truth) == 6 and truth[0].labels.shape == (doc["wl_rect"][3], doc["wl_rect"][2])
    lut = np.loadtxt(os.path.join(out, "r_transfer.csv"), delimiter=",", skiprows=1)
    assert lut.shape == (256, 2) and lut[-1, 0] == 1.0 and lut[-1, 1] == 1.0
