"""The instrument: a metal shaft with two jaws, entering from an edge and moving.

It occludes both channels (NIR: a little stray excitation,
``instrument_nir_level`` x background; WL: shaded steel) and hides whatever
truth is behind it.  Its path is drawn once per seed; its pose at time t is
computed in view coordinates.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import cv2
import numpy as np

from .params import PhantomParams


class Pose(NamedTuple):
    """Where the instrument is in one frame (view pixels)."""

    tip: np.ndarray  # (2,) x, y
    axis: np.ndarray  # (2,) unit vector from the entry point to the tip
    normal: np.ndarray  # (2,) unit vector across the shaft
    half_width: float  # px
    box: tuple  # x0, y0, x1, y1 bounding box of shaft and jaws


class Instrument:
    """The instrument's path, drawn from its own random stream.

    Parameters
    ----------
    params : PhantomParams (validated)
    rng : numpy Generator of the instrument's stream
    tip : optional (2,) view x, y: the tip is held there, wandering
        ``HELD_WANDER_MM`` (its other draws as without: the same path
        otherwise)
    """

    #: mm.  How far a held tip wanders about its point.
    HELD_WANDER_MM = 1.0

    def __init__(self, params: PhantomParams, rng: np.random.Generator, tip: Optional[np.ndarray] = None):
        self.params = params
        w, h = self.size = tuple(int(v) for v in params.size)
        self._px = 1.0 / params.mm_per_px  # px per mm
        self._side = int(rng.integers(3))  # 0 right, 1 left, 2 bottom
        self._base = rng.uniform(0.25, 0.75)
        self._tip = np.array([rng.uniform(0.35, 0.65) * w, rng.uniform(0.35, 0.65) * h])
        self._amp = np.array([rng.uniform(0.1, 0.25) * w, rng.uniform(0.1, 0.2) * h])
        self._per = rng.uniform(5, 9, 2)
        self._ph = rng.uniform(0, 2 * np.pi, 3)
        if tip is not None:
            self._tip = np.asarray(tip, np.float64)
            self._amp = np.full(2, self.HELD_WANDER_MM * self._px)

    def at(self, t: float) -> tuple[np.ndarray, Pose]:
        """``(mask, pose)`` at time ``t`` s: the (H, W) bool mask of shaft and jaws."""
        p = self.params
        w, h = self.size
        tip = self._tip + self._amp * np.sin(2 * np.pi * t / self._per + self._ph[:2])
        if self._side == 0:
            entry = np.array([w * 1.3, h * self._base])
        elif self._side == 1:
            entry = np.array([-0.3 * w, h * self._base])
        else:
            entry = np.array([w * self._base, h * 1.3])
        axis = tip - entry
        L = float(np.hypot(*axis))
        u = axis / L
        n = np.array([-u[1], u[0]])
        hw = p.instrument_width_mm * self._px / 2
        shaft = np.array([entry + n * hw, tip + n * hw, tip - n * hw, entry - n * hw])
        open_ang = math.radians(12 + 12 * math.sin(2 * np.pi * t / 1.7 + self._ph[2]))
        jaw_len = 2.4 * hw
        jaws = []
        for sgn in (1, -1):  # two tapered jaws hinged at the tip, opening and closing
            d = u * math.cos(open_ang) + sgn * n * math.sin(open_ang)
            jaws.append(np.array([tip + sgn * n * hw * 0.85, tip + sgn * n * hw * 0.05,
                                  tip + sgn * n * hw * 0.3 + d * jaw_len]))
        mask = np.zeros((h, w), np.uint8)
        polys = [shaft] + jaws
        cv2.fillPoly(mask, [np.round(q * 16).astype(np.int32) for q in polys], 1, cv2.LINE_8, shift=4)
        allp = np.concatenate(polys)
        box = (max(int(allp[:, 0].min()) - 1, 0), max(int(allp[:, 1].min()) - 1, 0),
               min(int(allp[:, 0].max()) + 2, w), min(int(allp[:, 1].max()) + 2, h))
        return mask.view(bool), Pose(tip, u, n, hw, box)

    @staticmethod
    def shade(wl: np.ndarray, mask: np.ndarray, pose: Pose) -> None:
        """Paint the instrument's steel into ``wl`` ((H, W, 3) uint8 BGR, in place):
        a rounded shaft with a highlight along it, the jaws darker."""
        tip, u, n, hw = pose.tip, pose.axis, pose.normal, pose.half_width
        x0, y0, x1, y1 = pose.box
        iy, ix = np.nonzero(mask[y0:y1, x0:x1])
        iy += y0
        ix += x0
        lat = ((ix - tip[0]) * n[0] + (iy - tip[1]) * n[1]) / hw  # -1..1 across the shaft
        lat = np.clip(lat, -1.0, 1.0)
        shade = 70 + 120 * np.sqrt(1 - lat ** 2) + 120 * np.exp(-((lat - 0.35) / 0.12) ** 2)
        ahead = ((ix - tip[0]) * u[0] + (iy - tip[1]) * u[1]) > 0  # jaw: darker steel
        shade = np.where(ahead, shade * 0.7, shade)
        g = np.clip(shade, 0, 255).astype(np.uint8)
        wl[iy, ix, 0] = np.minimum(g.astype(np.int32) + 6, 255)
        wl[iy, ix, 1] = g
        wl[iy, ix, 2] = g
