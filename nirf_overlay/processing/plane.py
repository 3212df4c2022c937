"""The transection-plane check: fluorescence inside the user's polygon.

The surgeon draws the transection plane (or the tumour bed) as a polygon in
WL pixels (``plane.polygon``).  Fluorescent pixels inside it (above
``threshold x hysteresis``) covering at least ``plane.min_area_mm2`` flag
the frame: tumour tissue may be in the plane.  Their area and their TBR
against the background map (:func:`~.background.map_tbr`) are reported.
"""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from ..settings import Settings
from .background import map_tbr
from .result import PlaneCheck


class PlaneChecker:
    """Checks each frame; keeps the polygon rasterised on the grid while it does not change."""

    def __init__(self):
        self._key: Optional[tuple] = None
        self._mask: Optional[np.ndarray] = None

    def check(self, settings: Settings, nir_small: np.ndarray, bg: np.ndarray, fluo: np.ndarray,
              ratio: np.ndarray, scale: float, mm_per_px: Optional[float],
              mm_eff: float, polygon: Optional[list] = None) -> PlaneCheck:
        """The plane check of one frame, on the analysis grid.

        Parameters
        ----------
        settings : uses ``plane`` and ``segment.threshold`` / ``hysteresis``
        nir_small, bg, ratio : (h, w) float32 NIR, background map and their ratio
        fluo : (h, w) uint8 0/1 fluorescence mask
        scale : analysis-grid px per WL px
        mm_per_px : calibrated mm per WL px, or None (no mm area)
        mm_eff : mm per WL px for the area limit (nominal without calibration)
        polygon : the polygon where it is in this frame (the anchored plane,
            :mod:`.plane_anchor`); None: ``settings.plane.polygon``
        """
        poly = settings.plane.polygon if polygon is None else polygon
        if not poly:
            return PlaneCheck()
        pmask = self._grid_mask(poly, nir_small.shape, scale)
        thr = float(settings.segment.threshold)
        hot = pmask & fluo.astype(bool) & (ratio > thr * settings.segment.hysteresis)
        count = int(hot.sum())
        area_px = count / (scale * scale)
        area_mm2 = area_px * mm_per_px * mm_per_px if mm_per_px else None
        flagged = count > 0 and area_px * mm_eff * mm_eff >= settings.plane.min_area_mm2
        return PlaneCheck(flagged=bool(flagged), tbr=map_tbr(nir_small, bg, hot),
                          area_px=float(area_px), area_mm2=area_mm2)

    def _grid_mask(self, poly: list, shape: tuple, scale: float) -> np.ndarray:
        """(h, w) bool: ``poly`` (WL px) filled on the grid."""
        key = (tuple(map(tuple, poly)), shape, scale)
        if self._key != key:
            m = np.zeros(shape, np.uint8)
            pts = np.round(np.asarray(poly, np.float64) * scale).astype(np.int32)
            cv2.fillPoly(m, [pts], 1)
            self._key, self._mask = key, m.astype(bool)
        return self._mask
