"""Bright ICG that is not a rim: the gallbladder, the bile duct and bile spills.

They must show in the overlay but are not tumour rims (DOMAIN.md, "What the signal looks
like"); the scene (:class:`~.scene.Scene`) draws them after the lesions, from their own
random stream, and the truth labels them ``GALLBLADDER``, ``DUCT`` and ``SPILL``.
"""

from __future__ import annotations

import cv2
import numpy as np

from .duct import cut_at_rims, touching_duct_path
from .motion import Motion
from .noise import random_curve, smooth_noise
from .params import PhantomParams
from .truth import DUCT, GALLBLADDER, SPILL


def draw_distractors(rng, params: PhantomParams, px: float, motion: Motion, lesions: list,
                     nir: np.ndarray, labels: np.ndarray, excl: np.ndarray) -> None:
    """Add the gallbladder, the bile duct and the spills to ``nir`` (world px) and their
    bits to ``labels``; mark their glow in ``excl``, which the background rings keep out of.

    Every distractor stays at least 2.5 mm off every rim outline of ``lesions`` (a duct
    that touches a rim on purpose, ``params.duct_touch``, is cut where it meets it).
    ``px`` is world px per mm.
    """
    p = params
    W, H = motion.world_size
    keep_out = np.zeros((H, W), np.uint8)
    for les in lesions:  # distractors stay >= 2.5 mm off every rim outline
        y0, y1, x0, x1 = les.bbox
        keep_out[y0:y1, x0:x1] |= (les.dist <= (les.width_mm + 2.5) * px).astype(np.uint8)
    x0, x1, y0, y1 = motion.always_in_view(3.0)
    add = np.zeros((H, W), np.float32)

    def commit(mask, prof, sigma_mm, brightness, bit):
        sig = sigma_mm * px
        # blur only around the object: the rest of the world stays untouched
        ys, xs = np.nonzero(mask)
        pad = int(4 * sig) + 2
        y0_, y1_ = max(ys.min() - pad, 0), min(ys.max() + pad + 1, H)
        x0_, x1_ = max(xs.min() - pad, 0), min(xs.max() + pad + 1, W)
        add[y0_:y1_, x0_:x1_] += cv2.GaussianBlur(
            prof[y0_:y1_, x0_:x1_] * np.float32(brightness), (0, 0), sig)
        labels[mask.astype(bool)] |= bit
        # keep the background rings clear of its blurred glow (3 sigma); a distance
        # transform is linear in the image where a big dilation kernel is not
        grow = cv2.distanceTransform(1 - mask, cv2.DIST_L2, 3) <= 3 * sig
        excl[grow] = 1
        keep_out[grow] = 1

    def border_point(out_mm):
        """A random point on the visible rectangle's border, pushed outwards."""
        side = rng.integers(4)
        o = out_mm * px
        if side == 0:
            return np.array([x0 - o, rng.uniform(y0, y1)]), 0.0
        if side == 1:
            return np.array([x1 + o, rng.uniform(y0, y1)]), np.pi
        if side == 2:
            return np.array([rng.uniform(x0, x1), y0 - o]), np.pi / 2
        return np.array([rng.uniform(x0, x1), y1 + o]), -np.pi / 2

    want_gb = p.gallbladder if p.gallbladder is not None else bool(rng.uniform() < 0.5)
    if want_gb:
        for _ in range(60):
            c, _h = border_point(rng.uniform(2, 8))
            mask = np.zeros((H, W), np.uint8)
            axes = (int(rng.uniform(14, 22) * px), int(rng.uniform(8, 12) * px))
            cv2.ellipse(mask, (int(c[0]), int(c[1])), axes, rng.uniform(0, 180), 0, 360, 1, -1)
            if not (mask & keep_out).any():
                tex = 1.0 + 0.1 * smooth_noise(rng, (H, W), 4 * px)
                commit(mask, (mask * tex * p.background).astype(np.float32), 1.0,
                       rng.uniform(*p.gallbladder_brightness), GALLBLADDER)
                break
    if p.bile_duct:
        wd = rng.uniform(*p.duct_width_mm) * px
        sigma = rng.uniform(0.4, 0.8)
        clear = cv2.distanceTransform(1 - keep_out, cv2.DIST_L2, 3) <= wd / 2 + px
        best = None
        touch = touching_duct_path(lesions[0], p.duct_touch, wd, px) \
            if p.duct_touch and lesions else None
        for attempt in range(0 if touch is not None else 80):
            # from the border of the view (or anywhere, later on), gently curved,
            # cut where it would run into a lesion: a duct diving deeper
            if attempt < 40:
                start, heading = border_point(rng.uniform(0, 5))
                heading += rng.uniform(-0.7, 0.7)
            else:
                start = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
                heading = rng.uniform(0, 2 * np.pi)
            pts = random_curve(rng, start, heading, rng.uniform(30, 70) * px, 0.5 * px, 0.02,
                                bend=rng.uniform(0.2, 0.8) * rng.choice([-1, 1]))
            xi = np.clip(np.round(pts[:, 0]).astype(int), 0, W - 1)
            yi = np.clip(np.round(pts[:, 1]).astype(int), 0, H - 1)
            hit = np.nonzero(clear[yi, xi])[0]
            keep = pts[: hit[0]] if hit.size else pts
            inside = ((keep[:, 0] > x0) & (keep[:, 0] < x1) & (keep[:, 1] > y0) & (keep[:, 1] < y1)).sum()
            if best is None or inside > best[1]:
                best = (keep, inside)
            if inside * 0.5 >= 25:  # steps are 0.5 mm: 25 mm visible is plenty
                break
        if touch is not None:
            best = (touch, len(touch))
        if best is not None and best[1] * 0.5 >= 8:
            mask = np.zeros((H, W), np.uint8)
            cv2.polylines(mask, [np.round(best[0]).astype(np.int32)], False, 1, max(1, int(round(wd))))
            if touch is not None:
                cut_at_rims(mask, lesions, px)
            d = cv2.distanceTransform(mask, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
            rad = max(wd / 2, 0.5)
            # a tube: path length through a cylinder ~ sqrt(1 - (x/r)^2)
            prof = np.sqrt(np.clip(1 - (1 - np.minimum(d / rad, 1)) ** 2, 0, 1)) * p.background
            bright = (p.duct_touch_brightness * lesions[0].tbr
                      if touch is not None and p.duct_touch_brightness else rng.uniform(*p.duct_brightness))
            commit(mask, prof.astype(np.float32), sigma, bright, DUCT)
    for _ in range(int(rng.integers(p.n_spills[0], p.n_spills[1] + 1))):
        for _try in range(40):
            mask = np.zeros((H, W), np.uint8)
            c = (int(rng.uniform(x0, x1)), int(rng.uniform(y0, y1)))
            axes = (int(rng.uniform(1.5, 3.5) * px), int(rng.uniform(1.0, 2.5) * px))
            cv2.ellipse(mask, c, axes, rng.uniform(0, 180), 0, 360, 1, -1)
            if not (mask & keep_out).any():
                commit(mask, (mask * p.background).astype(np.float32), 0.3, rng.uniform(4, 10), SPILL)
                break
    nir += add
