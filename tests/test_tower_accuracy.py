"""Accuracy on tower recordings: the phantom shown by a tower (insets, a display curve,
auto-gain with a step, burned-in text), written as 8-bit H.264, read back through the
combined source with the tower's profile, scored against the phantom's truth in
white-light-inset pixels by the evaluator's one scorer (``evaluate --tower``).

Layouts, curves and seeds here are other than the README's recording (side-by-side,
gamma:2.4, seed 77) and than the tuning seeds.
"""

import dataclasses

import numpy as np
import pytest

from nirf_overlay.calibration import Calibration
from nirf_overlay.calibration.transfer import parse_transfer
from nirf_overlay.evaluate import evaluate
from nirf_overlay.evaluate_tower import TowerInput
from nirf_overlay.phantom import Phantom, PhantomParams
from nirf_overlay.phantom.tower import Tower, TowerParams
from nirf_overlay.processing.pipeline import Pipeline

SIZE = (960, 540)  # the tower frame
STEP_S = 0.3  # the camera's gain step (x2), so that a few frames straddle it
FPS = 30.0
FRAMES = range(int(STEP_S * FPS) - 3, int(STEP_S * FPS) + 4)  # 3 before the step, 4 after


def _tower(layout, curve, seed, size=SIZE):
    params = PhantomParams(seed=seed, gain_step_s=STEP_S, n_lesions=2)
    return Tower(TowerParams(layout=layout, size=size, curve=curve, seed=seed), params)


def _score(tower, tmp_path, transfer="lut"):
    with TowerInput(tower, FRAMES, str(tmp_path), transfer=transfer) as rec:
        return evaluate(rec.pairs(), Pipeline(None, rec.calibration))


@pytest.mark.parametrize("layout", ["quad", "side-by-side"])
@pytest.mark.parametrize("curve", ["gamma:2.0", "log:40"])
@pytest.mark.parametrize("seed", [11, 12])
def test_with_the_right_transfer_the_numbers_are_those_of_the_signal(layout, curve, seed, tmp_path):
    r = _score(_tower(layout, curve, seed), tmp_path)
    assert r["detected"] == 1.0
    assert r["mean_dice"] >= 0.92, r["mean_dice"]
    assert r["duct_fraction"] <= 0.05
    assert abs(r["thickness_error_mm_max"]) <= 0.2, r["per_lesion"]
    assert abs(r["tbr_error_max"]) <= 0.06, r["per_lesion"]
    assert r["dice_before_gain_step"] is not None and r["dice_after_gain_step"] is not None


def test_without_a_transfer_the_ratios_are_of_display_values(tmp_path):
    tower = _tower("quad", "gamma:2.0", 11)
    with TowerInput(tower, FRAMES, str(tmp_path), transfer="none") as rec:
        pipe = Pipeline(None, rec.calibration)
        results = [pipe.process(p) for p in rec.pairs()]
    assert {r.nir_signal for r in results} == {"display"}
    (tmp_path / "b").mkdir()
    r = _score(tower, tmp_path / "b", transfer="none")
    assert r["tbr_error_median"] > 0.3  # display values: far from the signal's TBR


def test_display_encoded_nir_gets_no_black_level_estimate(tmp_path):
    # the tower set its own black before encoding; under an instrument the linear
    # signal is the tool's stray light, which an estimate would subtract from T and B
    with TowerInput(_tower("side-by-side", "gamma:2.2", 11), FRAMES, str(tmp_path)) as rec:
        assert Pipeline(None, rec.calibration, warm=False).black_level is None
    assert Pipeline(None, None, warm=False).black_level is not None  # raw counts: estimated


@pytest.mark.parametrize("argv,message", [
    (["--curve", "gamma:9"], "tower curve 'gamma:9': expected gamma:G (G 1..4) or log:A"),
    (["--size", "1280x700"], "tower size 1280x700: a tower frame is 16:9"),
    (["--transfer", "gamma:x"], "--transfer: 'gamma:x': the gamma must be a number"),
])
def test_evaluate_tower_refuses_a_bad_option_in_one_line(argv, message, capsys):
    from nirf_overlay.evaluate import main

    assert main(["--tower", "quad", "--seeds", "1", "--frames", "2", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message), err


def test_the_three_left_layouts_enlarged_nir_view_is_mapped_into_the_wl_inset(tmp_path):
    # the NIR view the pipeline uses is larger than the WL inset (INTER_AREA down)
    tower = _tower("three-left", "gamma:2.2", 12, size=(1280, 720))
    assert tower.rects["nir"][2] > tower.rects["wl"][2]
    r = _score(tower, tmp_path)
    assert r["mean_dice"] >= 0.92 and abs(r["tbr_error_max"]) <= 0.06, r["per_lesion"]


# -- dark and flat given with display-encoded NIR --------------------------------------

GAMMA = 2.2
OFFSET = 0.02  # the tower's black is not quite black: linear signal it adds everywhere


def _display_pairs(ph, frames, k):
    """Phantom frames as a tower would show them with a black offset: 8-bit display
    values of ``k * (raw - dark) + OFFSET`` through a gamma (vignetting kept)."""
    enc = parse_transfer(f"gamma:{GAMMA}")
    dark = ph.dark_frame().astype(np.float64)
    for i in frames:
        pair = ph.frame(i)
        lin = (pair.nir - dark) * k + OFFSET
        d = np.rint(255 * enc.encode(lin)).astype(np.uint16)
        yield dataclasses.replace(pair, nir=d, nir_bits=8, gain=None, exposure_ms=None)


def test_a_dark_and_flat_given_with_tower_input_apply_on_the_linear_scale():
    ph = Phantom(PhantomParams(seed=21, size=(480, 360), gain_step_s=None, n_lesions=2))
    raw0 = ph.frame(0).nir - ph.dark_frame().astype(np.float64)
    k = 0.6 / np.percentile(raw0, 99.9)
    dark_codes = np.full(ph.size[::-1], np.rint(255 * OFFSET ** (1 / GAMMA)), np.float32)
    cal = Calibration(dark=dark_codes, flat=ph.flat_field(), mm_per_px=ph.mm_per_px,
                      frame_size=ph.size, nir_transfer=parse_transfer(f"gamma:{GAMMA}"))
    r = evaluate(_display_pairs(ph, range(4), k), Pipeline(None, cal))
    assert abs(r["tbr_error_max"]) <= 0.06, r["per_lesion"]
    # without the dark the tower's offset sits in T and B alike: TBR reads low
    no_dark = evaluate(_display_pairs(ph, range(4), k),
                       Pipeline(None, dataclasses.replace(cal, dark=None)))
    assert no_dark["tbr_error_median"] > 0.1 and no_dark["tbr_error_max"] < -0.1


# -- 8-bit H.264 NIR (issue #17: "the brightest rim was overlaid but not outlined") ------

def test_8_bit_h264_nir_outlines_every_rim_the_raw_camera_does(tmp_path):
    # the phantom's NIR scaled linearly into 8 bits (its 99.9th percentile at 85 %,
    # the brightest rim near full scale) and streamed as H.264 beside its white light
    from nirf_overlay.evaluate_tower import SWS_FLAGS
    from nirf_overlay.recording.encoders import finish_file, raw_video_encoder, write_frame
    from nirf_overlay.sources import SourceSpec, open_source

    ph = Phantom(PhantomParams(seed=7, size=(640, 360), gain_step_s=None))
    frames = [ph.frame(i) for i in range(6)]
    dark = ph.dark_frame().astype(np.float64)
    k = 255 * 0.85 / np.percentile(frames[0].nir - dark, 99.9)
    def nir8(p):
        return np.clip(np.rint((p.nir - dark) * k), 0, 255).astype(np.uint8)

    rim = frames[0].truth.rim_mask
    assert np.percentile(nir8(frames[0])[rim], 99) >= 200  # the rim reaches near full scale
    paths = {}
    for name, pix, image in (("wl", "bgr24", lambda p: p.wl), ("nir", "gray", nir8)):
        paths[name] = str(tmp_path / f"{name}.mp4")
        enc = raw_video_encoder(paths[name], ph.size, ph.fps, pix_in=pix, codec_args=[
            "-sws_flags", SWS_FLAGS, "-c:v", "libx264", "-crf", "16", "-pix_fmt", "yuv420p"])
        for p in frames:
            write_frame(enc, image(p), paths[name])
        finish_file(enc, paths[name])
    cal = Calibration(flat=ph.flat_field(), mm_per_px=ph.mm_per_px, frame_size=ph.size,
                      nir_transfer=parse_transfer("linear"))
    with open_source(SourceSpec(wl=paths["wl"], nir=paths["nir"])) as source:
        assert source.info.nir_bits == 8
        pairs = [dataclasses.replace(p, truth=f.truth) for p, f in zip(source, frames)]
    r = evaluate(pairs, Pipeline(None, cal))
    raw = evaluate(frames, Pipeline(None, ph.calibration()))
    assert r["detected"] == raw["detected"] == 1.0  # the rim outlined in every frame
    assert r["mean_dice"] >= raw["mean_dice"] - 0.01 and r["mean_dice"] >= 0.92
    assert abs(r["tbr_error_max"]) <= 0.06, r["per_lesion"]


def test_evaluate_reports_tbr_and_thickness_errors_per_frame():
    ph = Phantom(PhantomParams(seed=7, size=(320, 192), gain_step_s=None))
    r = evaluate((ph.frame(i) for i in range(3)), Pipeline(None, ph.calibration()))
    errs = [f["tbr_error"] for f in r["per_frame"]]
    assert len(errs) == 3 and all(e is not None and abs(e) < 0.5 for e in errs)
    # the lesion's figure is the median over the frames of the same per-frame errors
    assert r["tbr_error_max"] == pytest.approx(float(np.median(errs)))
    assert all(f["thickness_error_mm"] is not None for f in r["per_frame"])
