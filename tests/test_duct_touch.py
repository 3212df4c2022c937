"""A bile duct that runs into a rim is not counted as rim (issue 17).

The phantom draws the duct meeting the first lesion's rim in the middle of
its arc, at three angles (tangent, oblique at 45 degrees, radial), 1 and 3 mm
wide, half and twice the rim's TBR bright; its truth mask stops at the rim's
outer outline.  Through the real Pipeline, on seeds the band rule was not
tuned on (tuned on 900): at most 8 % of the duct's pixels are labelled rim
(before the rim was cut to its radial band: 22-67 % for a bright duct on
seed 900), and the rim's Dice is not lower than on the same phantom without
the duct.  The same cases again with the phantom's tool held where the duct
meets the rim (its jaws hide the junction, the duct's end shows beside them).
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from nirf_overlay.errors import NirfError
from nirf_overlay.evaluate import evaluate, format_table
from nirf_overlay.phantom import Phantom, PhantomParams
from nirf_overlay.phantom.truth import DUCT, RIM
from nirf_overlay.processing.pipeline import Pipeline

SEEDS = (901, 902)
KINDS = ("tangent", "oblique", "radial")
WIDTHS = (1.0, 3.0)  # mm
BRIGHTNESS = (0.5, 2.0)  # x the rim's TBR
FRAMES = range(43, 46)

#: where the code misses the 8 % target today (measured; strict): none.  A
#: bright 1 mm duct along the rim's outside (901 tangent 1 mm x2) was 0.141:
#: it widened the rim's measured thickness (1.41 -> 1.72 mm, the width fit's
#: mean cross-section took in sections through the duct) and the band that the
#: thickness sets let the duct's inner side through; those sections are now
#: left out of the fit (width.py), 0.075.
KNOWN_SHORTFALLS: dict = {}

#: where the rim's Dice is lower than without the duct (measured; strict).
#: The duct's blur beside the rim, above half the rim's own peak, reads as rim:
#: a bright duct still costs Dice.  With the sections through the duct left
#: out of the width fit, 901 tangent 3 mm x0.5, 901 oblique 3 mm x2 and 902
#: tangent 1 and 3 mm x2 meet the target.
DICE_SHORTFALLS = {
    (901, "tangent", 1.0, 2.0): "Dice 0.926 vs 0.944 without the duct (before the width's sections: 0.886)",
    (901, "tangent", 3.0, 2.0): "Dice 0.928 (before the width's sections: 0.888)",
    (902, "radial", 3.0, 2.0): "Dice 0.958 vs 0.975 (before the rim's own peak: 0.963)",
    # since round 8's merge (the noise filter capped by the motion, the narrower rim-peak
    # window, the band rule beside a tool together; each branch alone met it): not found yet
    (901, "oblique", 3.0, 2.0): "Dice 0.937 vs 0.953 without the duct",
}
CASES = list(itertools.product(SEEDS, KINDS, WIDTHS, BRIGHTNESS))


def _params(seed, instrument=False, **kw) -> PhantomParams:
    return PhantomParams(seed=seed, size=(640, 360), n_lesions=1, gallbladder=False,
                         n_spills=(0, 0), instrument=instrument, **kw)


def _run(params: PhantomParams) -> dict:
    ph = Phantom(params)
    return evaluate((ph.frame(i) for i in FRAMES), Pipeline(calibration=ph.calibration()))


def _all(tool: bool) -> dict:
    """Every case's figures, and each seed's without the duct (``tool``: the tool held
    where the duct meets the rim, and at the same place without it)."""
    held = dict(duct_touch_tool=True) if tool else {}
    out = {}
    for seed, kind, width, rel in CASES:
        out[(seed, kind, width, rel)] = _run(_params(seed, tool, duct_touch=kind, duct_touch_brightness=rel,
                                                     duct_width_mm=(width, width), **held))
    for seed in SEEDS:
        alone = dict(duct_touch=TOOL_KIND, **held) if tool else {}
        out[(seed, None, 0.0, 0.0)] = _run(_params(seed, tool, bile_duct=False, **alone))
    print("\n" + format_table([(" ".join(map(str, k)), r) for k, r in out.items()]))
    return out


@pytest.fixture(scope="module")
def results():
    return _all(False)


#: the same cases with the phantom's tool held where the duct meets the rim
#: (``duct_touch_tool``): its jaws hide the junction and part of the rim and
#: core, and the duct's end shows beside them.  Beside a tool the core may be
#: hidden, so the band there is measured from the core completed by its
#: ellipse, or from the core pieces seen when the tool hides too much for a
#: sure ellipse, and a piece there is cut only when it runs away from the
#: core like a tube, not round it like a rim's arc, or when it runs on into
#: bright fluorescence beyond the rim's zone (band.py).  Where the 8 % target
#: is missed (measured; strict); before that rule (nothing beside a tool was
#: cut) also 901 tangent 1 mm x2 at 0.291, 901 oblique 3 mm x2 at 0.121 and
#: 902 tangent 1 mm x2, 3 mm x0.5 and x2 at 0.262, 0.111, 0.158.
TOOL_SHORTFALLS = {
    (901, "tangent", 1.0, 0.5): "0.086 (before the rule: 0.086)",
    (901, "tangent", 3.0, 0.5): "0.106 (0.152)",
    (901, "tangent", 3.0, 2.0): "0.106 (0.220)",
    (902, "tangent", 1.0, 0.5): "0.143 since round 8's merge (see DICE_SHORTFALLS)",
}
#: where the rim's Dice is lower than with the tool held there but no duct
#: (901 0.936, 902 0.969; measured; strict), with the Dice before the rule:
#: the tangent duct's side along the rim, above half the rim's peak, still
#: reads as rim, as without a tool (DICE_SHORTFALLS).  Before the rule also
#: 902 tangent 1 mm x2 (0.921), 3 mm x0.5 (0.936), x2 (0.914) and oblique
#: 1 and 3 mm x2 (0.953, 0.944).
TOOL_DICE_SHORTFALLS = {
    (901, "tangent", 1.0, 0.5): "Dice 0.918 (before the rule: 0.918)",
    (901, "tangent", 1.0, 2.0): "0.913 (0.860)",
    (901, "tangent", 3.0, 0.5): "0.879 (0.855)",
    (901, "tangent", 3.0, 2.0): "0.872 (0.816)",
    (902, "tangent", 1.0, 0.5): "Dice 0.951 vs 0.970, since round 8's merge",
}
TOOL_KIND = "radial"  # the tool's place depends only on the lesion, not on how the duct comes


@pytest.fixture(scope="module")
def tool_results():
    return _all(True)


def _both(plain: dict, tool: dict) -> list:
    """The cases without a tool (fixture ``results``) and with the tool held at the duct's
    end (``tool_results``), each strict xfail where its table says."""
    return [pytest.param(which, k, marks=[pytest.mark.xfail(strict=True, reason=short[k])]
                         if k in short else [])
            for which, short in (("results", plain), ("tool_results", tool)) for k in CASES]


@pytest.mark.parametrize("which,key", _both(KNOWN_SHORTFALLS, TOOL_SHORTFALLS))
def test_duct_touching_a_rim_is_not_rim(request, which, key):
    r = request.getfixturevalue(which)[key]
    assert r["detected"] == 1.0
    assert r["duct_fraction"] <= 0.08, f"{which} {key}: {r['duct_fraction']:.3f} of the duct labelled rim"


@pytest.mark.parametrize("which,key", _both(DICE_SHORTFALLS, TOOL_DICE_SHORTFALLS))
def test_rim_dice_is_not_lowered_by_the_duct(request, which, key):
    res = request.getfixturevalue(which)
    r, alone = res[key], res[(key[0], None, 0.0, 0.0)]
    assert r["mean_dice"] >= alone["mean_dice"] - 0.015, \
        f"{which} {key}: Dice {r['mean_dice']:.3f} vs {alone['mean_dice']:.3f} without the duct"


def _thickness(r) -> float:
    (les,) = r["per_lesion"].values()
    return les["thickness_mm"]


@pytest.mark.parametrize("key", CASES)
def test_the_duct_does_not_change_the_rim_thickness(results, key):
    """Sections through the duct are left out of the width fit (width.py): with them a
    bright 1 mm tangent duct widened 901's thickness 1.42 -> 1.72 mm, and the band that
    the thickness sets let the duct's inner side through."""
    t, alone = _thickness(results[key]), _thickness(results[(key[0], None, 0.0, 0.0)])
    assert abs(t - alone) <= 0.05, f"{key}: thickness {t:.3f} mm vs {alone:.3f} mm without the duct"


@pytest.mark.parametrize("key", CASES)
def test_the_rim_beside_a_bright_duct_is_kept(results, key):
    """Where the Dice still falls short, the rim itself is not lost: its edges are
    placed against its own peak, not the duct's (before: 901 tangent 1 mm x2 at
    0.64), and a width fit pulled by the duct's sections (edge levels above the
    rim's own peak) is refused (without that: 901 tangent 3 mm x2 at 0.26)."""
    assert results[key]["mean_dice"] >= 0.85, f"{key}: Dice {results[key]['mean_dice']:.3f}"


@pytest.mark.parametrize("kind", KINDS)
def test_phantom_duct_meets_the_rim(kind):
    """The touching duct ends on (or runs along) the rim, never over it, and
    its brightness relative to the rim is what was asked for."""
    for rel, brighter in ((2.0, True), (0.5, False)):
        ph = Phantom(_params(901, duct_touch=kind, duct_touch_brightness=rel, duct_width_mm=(2.0, 2.0)))
        labels, nir = ph.scene.labels, ph.scene.nir
        duct, rim = (labels & DUCT) != 0, (labels & RIM) != 0
        assert duct.any() and not (duct & rim).any()
        near = cv2.dilate(duct.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        assert (near & rim).any(), f"{kind}: the duct does not reach the rim"
        assert (float(np.percentile(nir[duct], 90)) > float(np.percentile(nir[rim], 90))) == brighter


def test_phantom_duct_touch_is_validated():
    with pytest.raises(NirfError, match="duct_touch"):
        PhantomParams(duct_touch="sideways").validate()
    with pytest.raises(NirfError, match="duct_touch_brightness"):
        PhantomParams(duct_touch="radial", duct_touch_brightness=0.0).validate()
    with pytest.raises(NirfError, match="duct_touch_tool"):
        PhantomParams(duct_touch_tool=True).validate()
    with pytest.raises(NirfError, match="duct_touch_tool"):
        PhantomParams(duct_touch="radial", duct_touch_tool=True, instrument=False).validate()


@pytest.mark.parametrize("kind", KINDS)
def test_phantom_holds_the_tool_at_the_ducts_end(kind):
    """With duct_touch_tool the tool's jaws lie at the junction in every frame tested:
    the duct's end shows beside the tool, and the rim too (not all hidden)."""
    ph = Phantom(_params(901, True, duct_touch=kind, duct_touch_tool=True, duct_width_mm=(2.0, 2.0)))
    for i in FRAMES:
        t = ph.frame(i).truth
        near = cv2.dilate(t.instrument_mask.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
        assert (near & t.duct_mask).any() and t.duct_mask.any() and t.rim_mask.any(), f"{kind} frame {i}"


def test_evaluate_duct_brightness_needs_a_touching_duct(capsys):
    from nirf_overlay.evaluate import main

    with pytest.raises(SystemExit) as e:
        main(["--seeds", "1", "--duct-brightness", "2"])
    assert e.value.code == 2
    assert "--duct-brightness: only with --duct-touch" in capsys.readouterr().err
