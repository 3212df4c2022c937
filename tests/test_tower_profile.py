"""Profile entries of a tower recording: layout, ignore_rects, nir_transfer; schema-1 migration."""

import json
import shutil

import pytest

from nirf_overlay.calibration import Calibration, load_profile, save_profile
from nirf_overlay.calibration.model import Layout
from nirf_overlay.calibration.profile import SCHEMA_VERSION
from nirf_overlay.calibration.transfer import parse_transfer
from nirf_overlay.errors import CalibrationError

SAMPLE = "calibration/sample/profile.json"


def test_schema_1_profile_still_loads_and_is_rewritten_as_current(tmp_path):
    # the bundled profile as a schema-1 writer left it (before layout, ignore_rects, nir_transfer)
    src = tmp_path / "old"
    shutil.copytree("calibration/sample", src)
    doc = json.load(open(SAMPLE))
    doc["schema_version"] = 1
    for key in ("layout", "ignore_rects", "nir_transfer"):
        doc.pop(key, None)
    (src / "profile.json").write_text(json.dumps(doc))
    cal = load_profile(str(src / "profile.json"))
    assert cal.layout is None and cal.ignore_rects == [] and cal.nir_transfer is None
    assert cal.mm_per_px == doc["mm_per_px"]
    out = save_profile(cal, str(tmp_path / "new" / "profile.json"))
    new = json.load(open(out))
    assert new["schema_version"] == SCHEMA_VERSION == 2
    assert new["layout"] is None and new["ignore_rects"] == [] and new["nir_transfer"] is None
    again = load_profile(out)
    assert again.mm_per_px == cal.mm_per_px and again.frame_size == cal.frame_size


def test_layout_ignore_rects_and_transfer_round_trip(tmp_path):
    lut = tmp_path / "curve.csv"
    lut.write_text("display,linear\n0,0\n0.5,0.2\n1,1\n")
    cal = Calibration(layout=Layout((0, 90, 640, 480), (660, 0, 1260, 945)),
                      ignore_rects=[(8, 8, 120, 24), (500, 440, 130, 30)],
                      nir_transfer=parse_transfer(f"lut:{lut}"))
    path = save_profile(cal, str(tmp_path / "tower.json"))
    doc = json.load(open(path))
    assert doc["layout"] == {"wl_rect": [0, 90, 640, 480], "nir_rect": [660, 0, 1260, 945]}
    assert doc["frame_size"] == [640, 480]  # the WL inset's size
    assert doc["nir_transfer"] == "lut:curve.csv"  # beside the profile: relative
    back = load_profile(path)
    assert back.layout == cal.layout and back.layout.wl_size == (640, 480)
    assert back.ignore_rects == [(8, 8, 120, 24), (500, 440, 130, 30)]
    assert back.nir_transfer.spec == f"lut:{lut}" and back.nir_transfer == cal.nir_transfer
    # the profile moves with its curve
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.copy(path, moved / "tower.json")
    shutil.copy(lut, moved / "curve.csv")
    assert load_profile(str(moved / "tower.json")).nir_transfer.spec == f"lut:{moved / 'curve.csv'}"


def test_transfer_entry_with_a_missing_lut_is_refused(tmp_path):
    path = save_profile(Calibration(frame_size=(64, 48), nir_transfer=parse_transfer("srgb")), str(tmp_path / "p.json"))
    doc = json.load(open(path))
    doc["nir_transfer"] = "lut:nothere.csv"
    json.dump(doc, open(path, "w"))
    with pytest.raises(CalibrationError, match=r"p\.json: nir_transfer: \S*nothere\.csv: no such LUT file"):
        load_profile(path)
