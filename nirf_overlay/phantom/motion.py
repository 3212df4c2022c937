"""Camera motion and breathing: where the view is in the world at time t.

One smooth similarity transform per frame (translation, rotation, scale),
applied to the whole scene and to its truth: breathing (period
``breathing_period_s``, ``breathing_mm`` along a drawn direction, with a
scale change), a slow drift (``drift_mm``) and a rotation (``rotation_deg``),
all scaled by ``motion`` (0: a static camera, no breathing).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .params import PhantomParams


class Motion:
    """The view's place in the world and how it moves.

    Parameters
    ----------
    params : PhantomParams (validated)
    rng : numpy Generator of the motion's own stream (phases and periods)

    Attributes
    ----------
    view_size : (W, H) of the frames, pixels
    margin : world pixels around the view on each side (motion never shows the
        world's edge)
    world_size : (WW, WH) = view_size + 2 * margin, pixels
    """

    def __init__(self, params: PhantomParams, rng: np.random.Generator):
        self.params = params
        w, h = self.view_size = tuple(int(v) for v in params.size)
        self.margin = int(round(0.16 * max(w, h)))
        self.world_size = (w + 2 * self.margin, h + 2 * self.margin)
        self._px = 1.0 / params.mm_per_px  # px per mm
        self._br_dir = rng.uniform(0, 2 * np.pi)
        self._br_phase = rng.uniform(0, 2 * np.pi)
        self._dr_per = rng.uniform(6, 12, 2)
        self._dr_phase = rng.uniform(0, 2 * np.pi, 2)
        self._rot_per = rng.uniform(8, 14)
        self._rot_phase = rng.uniform(0, 2 * np.pi)
        self._sc_phase = rng.uniform(0, 2 * np.pi)

    def affine(self, t: float) -> tuple[np.ndarray, float]:
        """``(M, scale)`` at time ``t`` s: the (2, 3) float64 world-to-view affine and
        the breathing/zoom scale (true mm per px = mm_per_px / scale)."""
        p = self.params
        k = p.motion
        br = math.sin(2 * np.pi * t / p.breathing_period_s + self._br_phase)
        dx = k * (p.breathing_mm * br * math.cos(self._br_dir)
                  + p.drift_mm * math.sin(2 * np.pi * t / self._dr_per[0] + self._dr_phase[0]))
        dy = k * (p.breathing_mm * br * math.sin(self._br_dir)
                  + p.drift_mm * math.sin(2 * np.pi * t / self._dr_per[1] + self._dr_phase[1]))
        rot = k * p.rotation_deg * math.sin(2 * np.pi * t / self._rot_per + self._rot_phase)
        scale = 1.0 + k * p.scale_amplitude * (0.6 * br + 0.4 * math.sin(2 * np.pi * t / 9.0 + self._sc_phase))
        w, h = self.view_size
        ww, wh = self.world_size
        cw = ((ww - 1) / 2, (wh - 1) / 2)
        M = cv2.getRotationMatrix2D(cw, rot, scale)  # rotate+scale about the world centre
        M[0, 2] += (w - 1) / 2 - cw[0] + dx * self._px
        M[1, 2] += (h - 1) / 2 - cw[1] + dy * self._px
        return M, scale

    def always_in_view(self, inset_mm: float) -> tuple[float, float, float, float]:
        """World rectangle ``(x0, x1, y0, y1)`` always in view despite motion, shrunk by
        ``inset_mm`` (where lesions and distractors may be placed)."""
        p = self.params
        slack = p.motion * (p.breathing_mm + p.drift_mm) * self._px
        w, h = self.view_size
        half_diag = math.hypot(w, h) / 2
        rot = math.radians(p.motion * p.rotation_deg)
        slack += half_diag * math.sin(rot) * 0.6 + p.motion * p.scale_amplitude * half_diag
        ins = inset_mm * self._px + slack
        m = self.margin
        return (m + ins, m + w - ins, m + ins, m + h - ins)
