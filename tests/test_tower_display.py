"""Display that suits a tower's display-encoded NIR: tones kept, the user's choice wins,
an overlay that follows the display levels, and the settings migration."""

import json

import numpy as np
import pytest

from nirf_overlay.frame import FramePair
from nirf_overlay.processing.pipeline import Pipeline
from nirf_overlay.settings import SCHEMA_VERSION, Settings

H, W = 120, 160


def _tower_nir(rng):
    """An 8-bit display-encoded NIR view with a median grey near 136 (a real tower frame's)."""
    y, x = np.mgrid[0:H, 0:W]
    nir = 70 + 130 * (x / W) + 20 * np.sin(y / 7.0) + rng.normal(0, 3, (H, W))
    return np.clip(np.rint(nir), 0, 255).astype(np.uint16)


def _run(settings, nir, frames=4):
    wl = np.full((H, W, 3), (40, 90, 160), np.uint8)
    p = Pipeline(settings)
    for i in range(frames):
        out = p.process(FramePair(wl=wl, nir=nir, nir_bits=8, index=i)).composite
    return out


def test_the_monochrome_view_of_display_encoded_nir_keeps_its_tones():
    nir = _tower_nir(np.random.default_rng(0))
    s = Settings()
    s.set("display.mode", "nir")
    s.set("normalise.temporal_alpha", 0.0)
    grey = _run(s, nir)[..., 1].astype(int)
    assert abs(np.median(nir) - 136) < 8
    assert np.abs(grey - nir).max() <= 1  # shown as the tower encoded it
    # the user's explicit compression still wins: log lifts the median far up
    s.set("levels.compression", "log")
    lifted = _run(s, nir)[..., 1]
    assert np.median(lifted) > np.median(nir) + 50


def test_raw_linear_nir_keeps_log_compression_by_default():
    nir16 = (_tower_nir(np.random.default_rng(1)).astype(np.float64) / 255) ** 2.2 * 4095
    s = Settings()
    s.set("display.mode", "nir")
    wl = np.full((H, W, 3), 50, np.uint8)
    p = Pipeline(s)
    pair = FramePair(wl=wl, nir=np.rint(nir16).astype(np.uint16), nir_bits=12)
    for i in range(3):
        out = p.process(pair).composite
    assert np.median(out[..., 1]) > 150  # log lifts the dim linear signal


@pytest.mark.parametrize("reference", ["background", "levels"])
def test_overlay_reference_levels_shows_a_field_fluorescing_everywhere(reference):
    rng = np.random.default_rng(2)
    nir = np.clip(np.rint(190 + rng.normal(0, 2, (H, W))), 0, 255).astype(np.uint16)
    wl = np.full((H, W, 3), (40, 90, 160), np.uint8)
    s = Settings()
    s.set("display.overlay_reference", reference)
    p = Pipeline(s)
    for i in range(4):
        out = p.process(FramePair(wl=wl, nir=nir, nir_bits=8, index=i)).composite
    change = np.abs(out.astype(int) - wl.astype(int)).sum(axis=2)
    if reference == "background":
        # relative to the local background: nothing stands out, nothing is drawn
        assert np.mean(change > 30) < 0.01
    else:
        assert np.mean(change > 30) > 0.95  # as a tower draws it: the whole field


def test_settings_schema_2_log_becomes_auto(tmp_path):
    old = tmp_path / "preset.json"
    old.write_text(json.dumps({"schema_version": 2, "levels": {"compression": "log"},
                               "display": {"mode": "nir"}}))
    s = Settings.load(old)
    assert s.levels.compression == "auto" and s.display.overlay_reference == "background"
    s.save(tmp_path / "new.json")
    again = json.loads((tmp_path / "new.json").read_text())
    assert again["schema_version"] == SCHEMA_VERSION == 3
    # a schema-3 file's explicit log stays log
    assert Settings.from_dict(again | {"levels": {"compression": "log"}}).levels.compression == "log"


def test_ignore_rects_are_neither_fluorescence_nor_background_nor_levels():
    from nirf_overlay.calibration import Calibration

    rng = np.random.default_rng(3)
    nir = np.clip(np.rint(60 + rng.normal(0, 2, (H, W))), 0, 255).astype(np.uint16)
    nir[5:20, 100:150] = 250  # the tower's clock, burnt in bright
    wl = np.full((H, W, 3), (40, 90, 160), np.uint8)
    s = Settings()
    s.set("levels.compression", "linear")  # percentile levels, so the white level shows it
    runs = {}
    for rects in ([], [(96, 2, 60, 22)]):
        p = Pipeline(s, Calibration(ignore_rects=rects))
        for i in range(4):
            res = p.process(FramePair(wl=wl, nir=nir, nir_bits=8, index=i))
        runs[bool(rects)] = (res, p.levels, p.normaliser.valid)
    (plain, lv_plain, _), (ignored, lv_ign, valid) = runs[False], runs[True]
    assert plain.fluorescence_mask[12, 120] > 0  # the clock counts as fluorescence
    assert ignored.fluorescence_mask is None or not ignored.fluorescence_mask[2:24, 96:156].any()
    assert not valid[2:24, 96:156].any() and valid.sum() == H * W - 60 * 22
    assert lv_plain.hi > 200 and lv_ign.hi < 80  # the clock no longer sets the white level
