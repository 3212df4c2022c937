"""What the pipeline returns for each frame, and how it is written to CSV.

``metrics.csv`` has one row per frame (:data:`FRAME_COLUMNS`), ``rims.csv``
one row per rim per frame (:data:`RIM_COLUMNS`).  ``process``, ``batch``, the
viewer's snapshot and the recorder all use :meth:`FrameResult.frame_row` and
:meth:`FrameResult.rim_rows`, so the files are identical wherever they come from.
"""

from __future__ import annotations

from dataclasses import InitVar, dataclass, field
from typing import Optional

import numpy as np

from .follow import MovedMask

FRAME_COLUMNS = (
    "frame", "time_s", "rims", "tbr", "contrast", "target_intensity",
    "background_intensity", "rim_thickness_mm", "rim_completeness", "rim_area_mm2",
    "saturated_fraction", "plane_fluorescence", "nir_signal", "dark_frame",
    "black_level",
    # per-frame status (see FrameResult.nir_status / dropped_before)
    "nir", "dropped_before", "plane_polygon",
)
RIM_COLUMNS = (
    "frame", "time_s", "rim_id", "tbr", "contrast", "target_intensity",
    "background_intensity", "rim_thickness_mm", "rim_thickness_px", "rim_completeness",
    "rim_area_mm2", "rim_area_px", "core_area_mm2", "core_area_px", "centroid_x", "centroid_y",
    "nir_signal", "gap_count", "largest_gap_deg", "nir", "dropped_before",
)


@dataclass
class RimMeasurement:
    """One rim in one frame.  Geometry in WL pixels; intensities in normalised counts.

    ``tbr`` = T / B and ``contrast`` = (T - B) / B, where T is the mean
    normalised NIR over the rim and B the median over the surrounding liver.
    ``*_mm*`` values are ``None`` when no mm-per-pixel calibration is known.
    """

    rim_id: int
    target_intensity: float
    background_intensity: float
    tbr: float
    contrast: float
    rim_thickness_px: float
    rim_thickness_mm: Optional[float]
    rim_completeness: float
    rim_area_px: float
    rim_area_mm2: Optional[float]
    core_area_px: float
    core_area_mm2: Optional[float]
    centroid: tuple[float, float]  # (x, y) WL pixels
    bbox: tuple[int, int, int, int]  # x, y, w, h WL pixels
    contour: Optional[np.ndarray] = None  # (N, 2) int32 outer contour, WL pixels
    #: arcs of the core's outline no rim covers (not hidden by a tool or the
    #: frame edge): :class:`~.gaps.RimGap` (degrees round the core's centre,
    #: image coordinates, and the uncovered outline's points)
    gaps: list = field(default_factory=list)

    @property
    def gap_count(self) -> int:
        return len(self.gaps)

    @property
    def largest_gap_deg(self) -> float:
        """Degrees of the longest gap (0 without gaps)."""
        return max((g.extent_deg for g in self.gaps), default=0.0)


@dataclass
class PlaneCheck:
    """Fluorescence inside the user's transection-plane polygon.

    ``known`` is False when the plane is lost (tracking lost, a cut, it left
    the picture: :mod:`~.plane_anchor`) or the NIR is: the check is then
    *unknown*, never clear.  ``polygon`` is where the anchored plane is in
    this frame (WL px; None without one); ``lost_reason`` says why it is lost.
    ``drawn`` and ``drawn_frame``: the polygon as drawn and the frame it was
    drawn on (anchored at), which a recording writes as its ``plane`` event.
    """

    flagged: bool = False
    tbr: Optional[float] = None
    area_px: float = 0.0
    area_mm2: Optional[float] = None
    known: bool = True
    polygon: Optional[np.ndarray] = None
    lost_reason: str = ""
    drawn: Optional[np.ndarray] = None
    drawn_frame: Optional[int] = None

    @property
    def lost(self) -> bool:
        return self.polygon is not None and not self.known

    def fluorescence_cell(self) -> Optional[int]:
        """metrics.csv's ``plane_fluorescence``: 1, 0, or None (empty) when unknown."""
        return int(bool(self.flagged)) if self.known else None

    def polygon_cell(self) -> Optional[str]:
        """metrics.csv's ``plane_polygon``: ``x y;x y;...`` WL px (1 decimal), or empty."""
        if self.polygon is None:
            return None
        return ";".join(f"{x:.1f} {y:.1f}" for x, y in np.asarray(self.polygon).reshape(-1, 2))


@dataclass
class FrameResult:
    """The pipeline's output for one :class:`~nirf_overlay.frame.FramePair`.

    Attributes
    ----------
    composite : (H, W, 3) uint8 BGR, WL size, in the current display mode
    rim_mask : (H, W) uint8 0/255, WL size: pixels counted as tumour rim
    fluorescence_mask : (H, W) uint8 0/255 or None: every fluorescent pixel
        (rims, ducts, gallbladder), for display only
    mask_motion : (3, 3) or None: a lagged analysis's masks (live display) are
        given as the analysis made them and moved by this motion, the motion
        since their frame, when first read (:class:`~.follow.MovedMask`), so
        ``rim_mask`` and ``fluorescence_mask`` always sit on this frame's tissue
        while a display that never reads them never pays for the move
    rims : per-rim measurements, tracked ids
    nir_signal : ``"linear"``, or ``"display"`` when the ratios are of
        display-encoded values (8-bit NIR without a transfer curve;
        :func:`~nirf_overlay.processing.transfer.nir_signal`)
    """

    index: int
    time_s: float
    composite: np.ndarray
    rim_mask: InitVar[Optional[np.ndarray]]  # read as the property below
    rims: list = field(default_factory=list)
    fluorescence_mask: InitVar[Optional[np.ndarray]] = None
    saturated_fraction: float = 0.0
    plane: PlaneCheck = field(default_factory=PlaneCheck)
    nir_lost: bool = False
    #: ``FramePair.nir_status`` of the pair: present, stale or lost
    nir_status: str = "present"
    #: frames the source (or a recording) lost just before this one
    dropped_before: int = 0
    mm_per_px: Optional[float] = None
    stage_ms: dict = field(default_factory=dict)
    arrival: float = 0.0  # copied from the FramePair, for latency
    #: frame whose analysis the rims, masks and plane check come from: ``index``
    #: itself, except in a live display's async pipeline (None: none finished yet)
    analysis_index: Optional[int] = None
    nir_signal: str = "linear"
    #: whether a dark frame was subtracted: False (``dark_frame`` 0 in metrics.csv)
    #: means the sensor's dark offset sits in T and B alike, so TBR reads low and
    #: changes with the gain (the offset is not scaled by the gain correction);
    #: None when not known (an empty cell)
    dark_subtracted: Optional[bool] = None
    #: the tissue's motion from the previous frame (:class:`~.motion.FrameMotion`),
    #: estimated once per frame from the white light; None only from sources of
    #: results that are not the Pipeline
    motion: Optional[object] = None
    #: ``"sync"``: this frame analysed before it was shown; ``"async"``: rims from
    #: the analysis thread (a live pipeline, see :mod:`.analysis_mode`)
    analysis_mode: str = "sync"
    #: without a dark frame: the black level subtracted in its place (NIR raw
    #: counts, estimated under an instrument: :mod:`.black_level`); None when
    #: not estimated (an empty cell), and always with a dark frame
    black_level: Optional[float] = None
    #: a remark on the stream for the user that stays true once said, e.g. which
    #: ``--nir-bits`` to give (:attr:`~.normalise.Normaliser.bits_notice`); "" when none.
    #: The viewer's engine keeps it and shows it in the status bar and the HUD
    notice: str = ""
    mask_motion: Optional[np.ndarray] = None

    def __post_init__(self, rim_mask, fluorescence_mask):
        h3 = self.mask_motion
        self._rim = None if rim_mask is None else MovedMask(rim_mask, h3)
        self._fluo = None if fluorescence_mask is None else MovedMask(fluorescence_mask, h3)

    # -- aggregates (several rims aggregate by rim area) ---------------------
    def _weighted(self, attr: str) -> Optional[float]:
        vals = [(getattr(r, attr), r.rim_area_px) for r in self.rims if getattr(r, attr) is not None]
        if not vals:
            return None
        w = sum(a for _, a in vals)
        if w <= 0:
            return float(np.mean([v for v, _ in vals]))
        return float(sum(v * a for v, a in vals) / w)

    def frame_row(self) -> dict:
        """The ``metrics.csv`` row.  Without NIR the analysis cells are empty, never
        "0 rims": ``nir`` says why."""
        if self.nir_lost:
            row = dict.fromkeys(FRAME_COLUMNS)
            row.update(frame=self.index, time_s=round(float(self.time_s), 6),
                       nir=self.nir_status, dropped_before=int(self.dropped_before))
            return row
        area = None
        if self.rims and self.mm_per_px:
            area = float(sum(r.rim_area_mm2 or 0.0 for r in self.rims))
        return {
            "frame": self.index,
            "time_s": round(float(self.time_s), 6),
            "rims": len(self.rims),
            "tbr": self._weighted("tbr"),
            "contrast": self._weighted("contrast"),
            "target_intensity": self._weighted("target_intensity"),
            "background_intensity": self._weighted("background_intensity"),
            "rim_thickness_mm": self._weighted("rim_thickness_mm"),
            "rim_completeness": self._weighted("rim_completeness"),
            "rim_area_mm2": area,
            "saturated_fraction": float(self.saturated_fraction),
            "plane_fluorescence": self.plane.fluorescence_cell(),
            "nir_signal": self.nir_signal,
            "dark_frame": None if self.dark_subtracted is None else int(self.dark_subtracted),
            "black_level": None if self.black_level is None else round(float(self.black_level), 2),
            "nir": self.nir_status,
            "dropped_before": int(self.dropped_before),
            "plane_polygon": self.plane.polygon_cell(),
        }

    def rim_rows(self) -> list[dict]:
        rows = []
        for r in self.rims:
            rows.append({
                "frame": self.index,
                "time_s": round(float(self.time_s), 6),
                "rim_id": r.rim_id,
                "tbr": r.tbr,
                "contrast": r.contrast,
                "target_intensity": r.target_intensity,
                "background_intensity": r.background_intensity,
                "rim_thickness_mm": r.rim_thickness_mm,
                "rim_thickness_px": r.rim_thickness_px,
                "rim_completeness": r.rim_completeness,
                "rim_area_mm2": r.rim_area_mm2,
                "rim_area_px": r.rim_area_px,
                "core_area_mm2": r.core_area_mm2,
                "core_area_px": r.core_area_px,
                "centroid_x": r.centroid[0],
                "centroid_y": r.centroid[1],
                "nir_signal": self.nir_signal,
                "gap_count": r.gap_count,
                "largest_gap_deg": r.largest_gap_deg,
                "nir": self.nir_status,
                "dropped_before": int(self.dropped_before),
            })
        return rows


# the masks as properties, set after the dataclass is made (so that it takes
# them as constructor arguments, InitVar, without a property as their default)
FrameResult.rim_mask = property(
    lambda self: None if self._rim is None else self._rim.pixels,
    doc="(H, W) uint8 0/255 rim mask on this frame's tissue (moved on first read), or None")
FrameResult.fluorescence_mask = property(
    lambda self: None if self._fluo is None else self._fluo.pixels,
    doc="(H, W) uint8 0/255 fluorescence mask on this frame's tissue (moved on first read), or None")


def row_cells(row: dict, columns) -> list[str]:
    """One CSV line's cells: ``row``'s values in ``columns`` order, formatted."""
    return [format_cell(row[c]) for c in columns]


def format_cell(value) -> str:
    """CSV cell text: empty for None, 6 significant digits for floats."""
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:
            return ""
        return f"{value:.6g}"
    return str(value)
