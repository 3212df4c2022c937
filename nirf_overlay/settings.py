"""One typed, validated settings model for the pipeline and the viewer.

Settings are nested dataclasses.  Every field carries its allowed range (or
choices) and a tooltip in the user's words in its metadata, so the CLI, the
JSON loader and the GUI settings panel validate and describe it the same way.

JSON layout::

    {"schema_version": 3, "normalise": {...}, "segment": {...}, ...}

Unknown keys and out-of-range values are refused with a message naming the
field (``segment.threshold: 0.5 is outside 1.05..20``).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .errors import SettingsError

SCHEMA_VERSION = 3

COLORMAPS = ("green", "viridis", "inferno", "cividis", "magenta")


@dataclass(frozen=True)
class DisplayMode:
    """One thing the OR monitor can show.

    Attributes
    ----------
    name : the value of ``display.mode``
    key : the viewer's keyboard shortcut
    label : the button's text
    help : one sentence for tooltips and the help overlay
    split : the picture holds two views side by side, so rim outlines and
        labels in the picture's coordinates are not drawn on it
    """

    name: str
    key: str
    label: str
    help: str
    split: bool = False


#: The display modes, in button order.  A new mode is a row here and its
#: renderer in :mod:`nirf_overlay.processing.composite`.
DISPLAY_MODES = (
    DisplayMode("wl", "1", "White light", "The laparoscopic view alone."),
    DisplayMode("nir", "2", "NIR", "The near-infrared fluorescence in grey."),
    DisplayMode("overlay", "3", "Overlay",
                "Fluorescence in colour over the white light, more opaque where it is stronger."),
    DisplayMode("intensity", "4", "Intensity map", "The fluorescence as an opaque heat map."),
    DisplayMode("side-by-side", "5", "Side by side",
                "White light on the left, the overlay or NIR on the right.", split=True),
    DisplayMode("pip", "6", "Picture in picture",
                "The overlay with the monochrome NIR in a corner inset."),
)
MODES = tuple(m.name for m in DISPLAY_MODES)


def display_mode(name: str) -> DisplayMode:
    """The :class:`DisplayMode` called ``name`` (KeyError if there is none)."""
    for m in DISPLAY_MODES:
        if m.name == name:
            return m
    raise KeyError(name)


def _modes_in_words() -> str:
    """``white light, NIR, ..., or picture in picture`` from the table."""
    words = [m.label if m.label.isupper() else m.label.lower() for m in DISPLAY_MODES]
    return ", ".join(words[:-1]) + ", or " + words[-1]


#: ``auto``: log for linear signal (raw counts, or NIR a transfer curve undid),
#: linear for display-encoded NIR, which its tower compressed already
#: (:func:`nirf_overlay.processing.levels.display_compression`)
COMPRESSIONS = ("auto", "linear", "gamma", "log")
OVERLAY_REFERENCES = ("background", "levels")


def _f(default, lo=None, hi=None, *, choices=None, label="", help="", unit="", kind=None):
    # kind: how a list value is validated ("rect" = [x, y, w, h]; default: polygon points)
    meta = {"lo": lo, "hi": hi, "choices": choices, "label": label, "help": help, "unit": unit,
            "kind": kind}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class NormaliseSettings:
    gain_normalise: bool = _f(True, label="Exposure/gain normalisation",
                              help="Divide NIR by exposure x gain when the source reports them, "
                                   "so intensities do not jump when the camera's auto-gain steps.")
    temporal_alpha: float = _f(0.5, 0.0, 0.95, label="Noise filter strength",
                               help="How much of the previous frame is kept to average out noise "
                                    "(0 = off). It resets where the picture moves, so motion does not smear.")
    motion_threshold: float = _f(4.0, 1.0, 50.0, label="Motion sensitivity",
                                 help="Change (in noise standard deviations) above which the noise "
                                      "filter lets a pixel follow the new frame at once.")
    saturation_fraction: float = _f(0.995, 0.5, 1.0, label="Saturation level",
                                    help="Fraction of the camera's full count at which a pixel "
                                         "is called saturated and shown in its own colour.")


@dataclass
class LevelsSettings:
    low_percentile: float = _f(1.0, 0.0, 50.0, unit="%", label="Black level percentile",
                               help="Percentile of NIR shown as black.")
    high_percentile: float = _f(99.7, 50.0, 100.0, unit="%", label="White level percentile",
                                help="Percentile of NIR shown at full brightness.")
    smoothing: float = _f(0.9, 0.0, 0.99, label="Level smoothing",
                          help="How slowly the display levels follow the scene (stops flicker).")
    compression: str = _f("auto", choices=COMPRESSIONS, label="Compression",
                          help="How 12-16-bit NIR is squeezed into the 8-bit display; log keeps "
                               "weak signal visible next to bright bile. auto: log for a camera's "
                               "linear NIR, linear for a tower's display-encoded 8-bit NIR (it is "
                               "compressed already).")
    gamma: float = _f(0.6, 0.2, 3.0, label="Gamma", help="Exponent for gamma compression.")
    log_strength: float = _f(100.0, 1.0, 10000.0, label="Log strength",
                             help="How strongly log compression lifts weak signal "
                                  "(display = log(1 + k x) / log(1 + k)).")
    roi: list = _f([], kind="rect", unit="px", label="Levels region",
                   help="[x, y, w, h] in WL pixels: only this region sets the display levels "
                        "(e.g. to leave out the scope's black border). Empty = whole frame.")


@dataclass
class SegmentSettings:
    threshold: float = _f(1.6, 1.05, 20.0, unit="x background", label="Fluorescence threshold",
                          help="A pixel counts as fluorescent when it is this many times brighter "
                               "than the surrounding liver.")
    hysteresis: float = _f(0.8, 0.3, 1.0, label="Hysteresis",
                           help="Weaker pixels (threshold x this) count when they touch strong ones, "
                                "so the rim does not flicker at the threshold.")
    min_rim_area_mm2: float = _f(2.0, 0.0, 500.0, unit="mm²", label="Smallest rim",
                                 help="Fluorescent rings smaller than this are ignored.")
    min_core_area_mm2: float = _f(3.0, 0.0, 2000.0, unit="mm²", label="Smallest dark core",
                                  help="A rim must surround a dark core at least this large.")
    core_ratio: float = _f(0.7, 0.2, 1.0, unit="x background", label="Dark core level",
                           help="Inside a rim, the core must be darker than this times the "
                                "surrounding liver to be called hypofluorescent (vessels are "
                                "about 0.85).")
    min_completeness: float = _f(0.3, 0.0, 1.0, label="Least rim completeness",
                                 help="Fraction of a core's circumference the rim must cover "
                                      "to count as a rim (partial rims are common).")
    background_radius_mm: float = _f(4.0, 1.0, 50.0, unit="mm", label="Background ring",
                                     help="Width of the liver ring around each lesion used as background.")
    background_gap_mm: float = _f(1.5, 0.0, 20.0, unit="mm", label="Background gap",
                                  help="Distance between a lesion and its background ring, so the "
                                       "rim's blurred glow does not count as liver.")
    track_max_shift_mm: float = _f(8.0, 0.5, 100.0, unit="mm", label="Tracking distance",
                                   help="How far a rim may move between frames and keep its id.")
    analysis_scale: float = _f(0.125, 0.125, 1.0, label="Analysis scale",
                               help="Segmentation runs on a grid this much smaller than the frame "
                                    "(never coarser than about 240 pixels across); rim edges and "
                                    "widths are then refined finer, per lesion.")
    analysis_every: int = _f(1, 1, 8, unit="frames", label="Analyse every",
                             help="Segment and measure rims on every n-th frame only (the masks "
                                  "and numbers of the last analysed frame are shown in between); "
                                  "1 = every frame. For slow machines.")
    reuse_rims: bool = _f(False, label="Re-measure tracked rims",
                          help="Rims found in the last analysed frame are measured again where "
                               "the tissue's motion puts them, and the full search for new rims "
                               "runs every few frames, when new tissue comes into view, when the "
                               "motion is uncertain or a rim is lost (faster analysis).")


@dataclass
class DisplaySettings:
    mode: str = _f("overlay", choices=MODES, label="Display mode",
                   help=f"What the monitor shows: {_modes_in_words()}.")
    colormap: str = _f("green", choices=COLORMAPS, label="Colour map",
                       help="Colour of the fluorescence. 'cividis' is safe for colour-blind viewers.")
    alpha: float = _f(0.8, 0.0, 1.0, label="Overlay opacity",
                      help="Opacity of the strongest fluorescence; weaker signal is more "
                           "transparent so the anatomy stays visible.")
    alpha_floor: float = _f(0.25, 0.0, 1.0, label="Overlay start",
                            help="Display level below which the overlay is fully transparent.")
    overlay_reference: str = _f("background", choices=OVERLAY_REFERENCES, label="Overlay follows",
                                help="background: the overlay shows only what is brighter than "
                                     "the fluorescence threshold over the surrounding liver (rims). "
                                     "levels: its opacity follows the display levels, as towers "
                                     "draw it, so a field that fluoresces everywhere is visible.")
    show_contours: bool = _f(True, label="Rim outline", help="Outline detected rims.")
    show_colorbar: bool = _f(False, label="Colour bar", help="Show the intensity colour bar.")
    show_saturation: bool = _f(True, label="Mark saturation",
                               help="Show saturated NIR pixels in their own colour.")
    pip_scale: float = _f(0.3, 0.1, 0.5, label="Inset size",
                          help="Size of the picture-in-picture inset (fraction of the width).")
    side_by_side_right: str = _f("overlay", choices=("overlay", "nir"), label="Second view",
                                 help="What side-by-side shows next to the white light: "
                                      "the overlay or the monochrome NIR.")


@dataclass
class PlaneSettings:
    polygon: list = _f([], label="Transection plane",
                       help="Polygon (WL pixel coordinates) of the transection plane or tumour bed; "
                            "fluorescence inside it is flagged.")
    min_area_mm2: float = _f(0.5, 0.0, 100.0, unit="mm²", label="Smallest plane signal",
                             help="Fluorescence inside the plane smaller than this is ignored.")
    frame: int = _f(-1, -1, 100_000_000, unit="frame", label="Plane drawn on frame",
                    help="Frame the polygon was drawn on: it is anchored to the tissue there and "
                         "follows its motion; -1 = the first frame processed with it.")


@dataclass
class Settings:
    normalise: NormaliseSettings = field(default_factory=NormaliseSettings)
    levels: LevelsSettings = field(default_factory=LevelsSettings)
    segment: SegmentSettings = field(default_factory=SegmentSettings)
    display: DisplaySettings = field(default_factory=DisplaySettings)
    plane: PlaneSettings = field(default_factory=PlaneSettings)

    # -- access by dotted name -------------------------------------------------
    def get(self, name: str) -> Any:
        section, key = _split(name)
        return getattr(getattr(self, section), key)

    def set(self, name: str, value: Any) -> None:
        """Validate and set one field, e.g. ``set("segment.threshold", 2.0)``."""
        section, key = _split(name)
        sec = getattr(self, section, None)
        if sec is None or not dataclasses.is_dataclass(sec):
            raise SettingsError(f"{name}: no such setting; give one of the sections "
                                f"{', '.join(_section_names())}")
        if key not in _field_map(sec):
            raise SettingsError(f"{name}: no such setting; give one of {section}."
                                f"{{{', '.join(_field_map(sec))}}}")
        setattr(sec, key, validate_field(name, _field_map(sec)[key], value))

    def fields(self) -> Iterator[tuple[str, dataclasses.Field]]:
        """Yield ``(dotted_name, dataclasses.Field)`` for every setting, in model order."""
        for sec in dataclasses.fields(self):
            for f in dataclasses.fields(getattr(self, sec.name)):
                yield f"{sec.name}.{f.name}", f

    def differences(self, other: "Settings") -> list[str]:
        """Dotted names of the settings whose value in ``other`` differs from this one's.

        In model order, so whoever applies them one by one (the viewer's evented
        model) does it in the same order every time.
        """
        return [name for name, _f in self.fields() if self.get(name) != other.get(name)]

    def copy(self) -> "Settings":
        return copy.deepcopy(self)

    # -- JSON ---------------------------------------------------------------
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["schema_version"] = SCHEMA_VERSION
        return d

    @classmethod
    def from_dict(cls, data: dict, *, where: str = "settings") -> "Settings":
        if not isinstance(data, dict):
            raise SettingsError(f"{where}: expected a JSON object")
        data = _migrate(dict(data), where)
        s = cls()
        for section, values in data.items():
            if section == "schema_version":
                continue
            if section not in _section_names():
                raise SettingsError(f"{where}: unknown section {section!r}; give one of "
                                    f"{', '.join(_section_names())}")
            if not isinstance(values, dict):
                raise SettingsError(f"{where}: {section} must be an object")
            for key, value in values.items():
                try:
                    s.set(f"{section}.{key}", value)
                except SettingsError as e:
                    raise SettingsError(f"{where}: {e}") from None
        return s

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path) -> "Settings":
        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise SettingsError(f"{path}: no such settings file; give the path of a settings "
                                "JSON file (as the viewer's settings panel saves)") from None
        except OSError as e:
            raise SettingsError(f"{path}: cannot read ({e.strerror})") from None
        except UnicodeDecodeError:
            raise SettingsError(f"{path}: not a settings file (not text); give a settings "
                                "JSON file") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise SettingsError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None
        return cls.from_dict(data, where=str(path))


def _split(name: str) -> tuple[str, str]:
    if name.count(".") != 1:
        raise SettingsError(f"{name}: settings are named section.field, e.g. segment.threshold")
    return tuple(name.split("."))  # type: ignore[return-value]


def _section_names() -> tuple:
    return tuple(f.name for f in dataclasses.fields(Settings))


def _field_map(sec) -> dict:
    return {f.name: f for f in dataclasses.fields(sec)}


def _finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate_field(name: str, f: dataclasses.Field, value: Any) -> Any:
    """Return ``value`` converted to the field's type, or raise SettingsError."""
    meta = f.metadata
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise SettingsError(f"{name}: {value!r} is not true or false; give true or false")
        return value
    if isinstance(default, (int, float)):
        lo, hi = meta.get("lo"), meta.get("hi")
        give = "give a " + ("whole number" if isinstance(default, int) else "number") + (
            f" in {lo:g}..{hi:g}" if lo is not None and hi is not None else "")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SettingsError(f"{name}: {value!r} is not a number; {give}")
        if not math.isfinite(value):  # (before int(): NaN and inf have no int)
            raise SettingsError(f"{name}: {value!r} is not a finite number; {give}")
        value = type(default)(value)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise SettingsError(f"{name}: {value:g} is outside {lo:g}..{hi:g}")
        return value
    if isinstance(default, str):
        choices = meta.get("choices")
        if not isinstance(value, str) or (choices and value not in choices):
            raise SettingsError(f"{name}: {value!r} is not one of {', '.join(choices or ())}")
        return value
    if isinstance(default, list) and meta.get("kind") == "rect":  # [x, y, w, h] or []
        if not isinstance(value, (list, tuple)) or len(value) not in (0, 4) or not all(
                _finite_number(c) for c in value):
            raise SettingsError(f"{name}: expected [x, y, w, h] in pixels (or [])")
        if value and (min(value) < 0 or value[2] < 1 or value[3] < 1):
            raise SettingsError(f"{name}: {list(value)!r} needs x, y >= 0 and w, h >= 1")
        return [int(round(c)) for c in value]
    if isinstance(default, list):  # polygon: [[x, y], ...]
        if not isinstance(value, (list, tuple)):
            raise SettingsError(f"{name}: expected a list of [x, y] points")
        pts = []
        for p in value:
            if not isinstance(p, (list, tuple)) or len(p) != 2 or not all(map(_finite_number, p)):
                raise SettingsError(f"{name}: {p!r} is not an [x, y] point")
            pts.append([float(p[0]), float(p[1])])
        if 0 < len(pts) < 3:
            raise SettingsError(f"{name}: a polygon needs at least 3 points (or none)")
        return pts
    return value


def _migrate(data: dict, where: str) -> dict:
    version = data.get("schema_version", SCHEMA_VERSION)
    if not isinstance(version, int) or version < 1:
        raise SettingsError(f"{where}: schema_version {version!r} is not a positive integer")
    if version > SCHEMA_VERSION:
        raise SettingsError(
            f"{where}: schema_version {version} is newer than this nirf-overlay understands "
            f"({SCHEMA_VERSION}); upgrade nirf-overlay, or give a settings file this version wrote"
        )
    # one step at a time, oldest first
    if version < 2:
        # 1 -> 2: segment.max_tubularity went: it never changed an answer (a bile
        # duct is told from a rim by having no dark core to surround), so a
        # slider for it only misled whoever tuned it
        seg = data.get("segment")
        if isinstance(seg, dict):
            data["segment"] = {k: v for k, v in seg.items() if k != "max_tubularity"}
        data["schema_version"] = version = 2
    if version < 3:
        # 2 -> 3: levels.compression gained "auto" (log for linear signal, linear
        # for a tower's display-encoded NIR) as its default; "log" was the default
        # every saved file carried, and would compress a tower's NIR a second time
        lv = data.get("levels")
        if isinstance(lv, dict) and lv.get("compression") == "log":
            data["levels"] = dict(lv, compression="auto")
        data["schema_version"] = version = 3
    return data
