"""The scene: everything the phantom draws in world coordinates, once per seed.

The world is a canvas larger than the view (see :class:`~.motion.Motion`), so
that motion never shows its edge; one world pixel is ``mm_per_px`` at scale 1.
It holds the noise-free NIR signal (parenchyma with vessels, metastases with
their rims, bile duct, gallbladder and spills, each blurred by scattering),
the truth labels and lesion ids, and the white-light texture with the glints'
alpha.  Each part draws from its own random stream (see
:class:`~.render.Phantom`), in millimetres, so a seed is the same procedure at
every frame size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import cv2
import numpy as np

from .distractors import draw_distractors
from .motion import Motion
from .noise import blur, fourier_loop, random_curve, smooth_noise
from .params import PhantomParams
from .truth import CORE, DISTRACTOR, DUCT, GALLBLADDER, RIM, RING, SPECULAR


@dataclass
class Lesion:
    """One metastasis as drawn in the world (the truth reports it per frame)."""

    id: int
    center: np.ndarray  # world px
    radius_px: float
    width_mm: float
    completeness: float
    tbr: float
    core_level: float
    depth_mm: float
    sigma_mm: float
    wl_visibility: float
    bbox: tuple = ()
    arc_center_rad: float = 0.0  # world angle of the rim arc's middle (set while drawing)  # world y0, y1, x0, x1 of its patch
    # in its patch, set while drawing
    rim: Optional[np.ndarray] = None  # (h, w) bool, the rim
    dist: Optional[np.ndarray] = None  # (h, w) float32, px from the core
    wl_core: Optional[np.ndarray] = None  # (h, w) float32, the pale tumour in WL
    rim_light: Optional[np.ndarray] = None  # (h, w) float32, until its amplitude is solved


class Scene:
    """The world of one seed: NIR signal, labels, lesion ids, WL texture and glints.

    Parameters
    ----------
    params : PhantomParams (validated)
    streams : callable
        ``streams(part) -> numpy Generator``; parts 10 (parenchyma, vessels),
        11 (lesion placement), 100 + id (each lesion), 12 (duct, gallbladder,
        spills), 13 (WL texture), 14 (glints).
    motion : Motion
        Where the view is in the world, and how far it moves.

    Attributes
    ----------
    nir : (WH, WW) float32, the noise-free NIR signal (scattering blur included),
        normalised counts
    labels : (WH, WW) uint8, bits of :data:`~.truth.LABEL_BITS`
    ids : (WH, WW) uint8, low nibble: rim of lesion k; high nibble: its background ring
    wl : (WH, WW, 4) uint8, WL colour (BGR) and the glints' alpha in one image,
        so that a frame needs one warp
    glint_boxes : list of (x, y, w, h) world boxes of the glints
    lesions : list of :class:`Lesion`
    """

    def __init__(self, params: PhantomParams, streams: Callable[[int], np.random.Generator],
                 motion: Motion):
        self.params = params
        self._motion = motion
        self._px = 1.0 / params.mm_per_px  # px per mm
        self._ww, self._wh = motion.world_size
        W, H = self._ww, self._wh
        parench, self._vessel = self._parenchyma(streams(10))
        nir = parench * (1.0 - 0.15 * self._vessel)
        labels = np.zeros((H, W), np.uint8)
        ids = np.zeros((H, W), np.uint8)  # low nibble: rim of lesion k+1; high: its ring
        excl = np.zeros((H, W), np.uint8)  # keep-out for the background rings

        self.lesions = self._place_lesions(streams(11))
        for les in self.lesions:
            self._draw_lesion(streams(100 + les.id), les, nir, parench, labels, ids)
        draw_distractors(streams(12), params, self._px, motion, self.lesions, nir, labels, excl)
        self._draw_rings(labels, ids, excl)
        self._solve_amplitudes(nir, ids)
        self.nir = nir
        self.labels = labels
        self.ids = ids
        texture = self._wl_texture(streams(13), labels)
        glints = self._glints(streams(14))
        # WL (BGR) and the glints' alpha in one 4-channel image: one warp per frame
        self.wl = np.dstack([texture, glints])
        n_lab, _lab, st, _c = cv2.connectedComponentsWithStats((glints > 0).astype(np.uint8))
        self.glint_boxes = [tuple(int(v) for v in st[k, :4]) for k in range(1, n_lab)]

    def glint(self, wl: np.ndarray, wl4: np.ndarray, M: np.ndarray, instrument: np.ndarray,
              labels: np.ndarray) -> None:
        """Saturate the view's WL towards white where the warped glint alpha says so.

        Parameters
        ----------
        wl : (H, W, 3) uint8 BGR, changed in place
        wl4 : (H, W, 4) uint8, :attr:`wl` warped into the view (its alpha: the glints)
        M : (2, 3) float64 world-to-view affine of this frame
        instrument : (H, W) bool, the instrument hides the glints behind it
        labels : (H, W) uint8, gets SPECULAR where a glint saturates

        Only inside each glint's box, so the cost does not grow with the frame.
        """
        h, w = wl.shape[:2]
        for bx, by, bw, bh in self.glint_boxes:
            corners = np.array([[bx, by, 1], [bx + bw, by, 1], [bx, by + bh, 1], [bx + bw, by + bh, 1]], float)
            v = corners @ M.T
            x0, y0 = np.floor(v.min(0)).astype(int) - 1
            x1, y1 = np.ceil(v.max(0)).astype(int) + 2
            x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
            if x0 >= x1 or y0 >= y1:
                continue
            a = wl4[y0:y1, x0:x1, 3]
            a = np.where(instrument[y0:y1, x0:x1], 0, a)
            af = a.astype(np.float32)[..., None] / np.float32(255)
            sub = wl[y0:y1, x0:x1]
            sub[:] = (sub * (1 - af) + 255 * af).astype(np.uint8)
            labels[y0:y1, x0:x1][a >= 250] |= SPECULAR

    # -- building the world ------------------------------------------------------
    def _parenchyma(self, rng):
        """Parenchyma fluorescence P(x) and the vessels' (WH, WW) float32 maps."""
        p = self.params
        W, H = self._ww, self._wh
        px = self._px
        var = smooth_noise(rng, (H, W), 18 * px) * p.background_variation
        parench = (p.background * (1.0 + var)).clip(0.3 * p.background).astype(np.float32)
        vessel = np.zeros((H, W), np.float32)
        for _ in range(rng.integers(5, 10)):
            start = np.array([rng.uniform(0, W), rng.uniform(0, H)])
            pts = random_curve(rng, start, rng.uniform(0, 2 * np.pi), rng.uniform(30, 80) * px,
                                1.0 * px, 0.08)
            thick = max(1, int(round(rng.uniform(0.8, 2.5) * px)))
            cv2.polylines(vessel, [np.round(pts).astype(np.int32)], False, 1.0, thick, cv2.LINE_AA)
        return parench, cv2.GaussianBlur(vessel, (0, 0), 0.3 * px)

    def _place_lesions(self, rng):
        p = self.params
        n = p.n_lesions if p.n_lesions is not None else int(rng.integers(1, 4))
        px = self._px
        x0, x1, y0, y1 = self._motion.always_in_view(1.0)
        placed = []
        radii = sorted((rng.uniform(*p.lesion_radius_mm) for _ in range(n)), reverse=True)
        for k, r_mm in enumerate(radii):
            width = rng.uniform(*p.rim_width_mm)
            for attempt in range(400):
                if attempt and attempt % 50 == 0:
                    r_mm = max(p.lesion_radius_mm[0] * 0.5, r_mm * 0.85)
                reach = (r_mm * 1.15 + width) * px
                if x1 - x0 < 2 * reach or y1 - y0 < 2 * reach:
                    continue
                c = np.array([rng.uniform(x0 + reach, x1 - reach), rng.uniform(y0 + reach, y1 - reach)])
                ok = all(
                    np.hypot(*(c - q.center)) > reach + (q.radius_px * 1.15 + q.width_mm * px) + 3.0 * px
                    for q in placed
                )
                if ok:
                    break
            else:
                continue
            complete = rng.uniform() < p.p_complete
            depth = rng.uniform(*p.depth_mm)
            placed.append(Lesion(
                id=len(placed) + 1, center=c, radius_px=r_mm * px, width_mm=width,
                completeness=1.0 if complete else rng.uniform(*p.completeness),
                tbr=float(math.exp(rng.uniform(math.log(p.tbr[0]), math.log(p.tbr[1])))),
                core_level=rng.uniform(*p.core_level), depth_mm=depth,
                sigma_mm=p.blur_sigma_mm_at_surface + p.blur_sigma_mm_per_mm_depth * depth,
                wl_visibility=rng.uniform(0.0, 0.3),
            ))
        return placed

    def _draw_lesion(self, rng, les, nir, parench, labels, ids):
        p = self.params
        px = self._px
        w_px = les.width_mm * px
        sig = les.sigma_mm * px
        reach = les.radius_px * 1.3 + w_px + (p.ring_gap_mm + p.ring_width_mm) * px + 4 * sig + 4
        cx, cy = les.center
        y0, y1 = int(max(0, cy - reach)), int(min(self._wh, cy + reach + 1))
        x0, x1 = int(max(0, cx - reach)), int(min(self._ww, cx + reach + 1))
        les.bbox = (y0, y1, x0, x1)
        hh, ww = y1 - y0, x1 - x0
        # wobbly core outline
        n = 720
        th = np.linspace(0, 2 * np.pi, n, endpoint=False)
        r = les.radius_px * (1.0 + fourier_loop(rng, 6, 0.09))
        poly = np.stack([cx - x0 + r * np.cos(th), cy - y0 + r * np.sin(th)], 1)
        core = np.zeros((hh, ww), np.uint8)
        cv2.fillPoly(core, [np.round(poly * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
        # rim = points within w of the core: exact constant perpendicular width
        dist = cv2.distanceTransform(1 - core, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        ang = np.arctan2(yy - cy, xx - cx)
        a0 = rng.uniform(-np.pi, np.pi)
        les.arc_center_rad = float(a0)
        dang = np.abs((ang - a0 + np.pi) % (2 * np.pi) - np.pi)  # 0..pi from the arc centre
        half = les.completeness * np.pi
        in_arc = dang <= half if les.completeness < 1.0 else np.ones_like(dang, bool)
        # (dist is to the nearest core pixel's *centre*, which lies on average a
        # quarter pixel inside the core's pixel edge, over all edge directions:
        # dist <= w + 0.25 gives a rim whose area is that of width w, within
        # 0.1 px; dist <= w drew every rim about a quarter pixel thinner than w)
        ring_full = (dist > 0) & (dist <= w_px + 0.25)
        rim = ring_full & in_arc
        # patchy intensity along the arc (mean 1) with soft fading at the arc ends
        patch_th = 1.0 + fourier_loop(rng, 6, 1.0)
        patch_th = patch_th - patch_th.mean()
        patch_th = 1.0 + p.rim_patchiness * patch_th / max(np.abs(patch_th).max(), 1e-6)
        idx = ((ang + np.pi) / (2 * np.pi) * n).astype(np.int32) % n
        patch = patch_th[idx].astype(np.float32)
        patch *= 1.0 + 0.08 * smooth_noise(rng, (hh, ww), 0.7 * px)
        if les.completeness < 1.0:
            taper = np.clip((half - dang) / math.radians(10), 0, 1)
            patch *= (0.6 + 0.4 * taper).astype(np.float32)
        corem = core.astype(bool)
        core_tex = (les.core_level * (1.0 + 0.15 * smooth_noise(rng, (hh, ww), 1.5 * px))).clip(0.05)
        # deviation from parenchyma, before blur: d0 (core/rim cut-outs) + a * d1 (rim light)
        d0 = np.where(corem, core_tex - 1.0, 0.0).astype(np.float32)
        d0[rim] = -1.0
        d1 = np.where(rim, patch, 0).astype(np.float32)
        d0b = cv2.GaussianBlur(d0, (0, 0), sig)
        d1b = cv2.GaussianBlur(d1, (0, 0), sig)
        P = parench[y0:y1, x0:x1] * (1.0 - 0.15 * self._vessel[y0:y1, x0:x1])
        # the dark core and the rim's cut-out now; the rim light once the
        # background rings are known (see _solve_amplitudes)
        nir[y0:y1, x0:x1] += P * d0b
        les.rim_light = P * d1b
        les.rim = rim
        lab = labels[y0:y1, x0:x1]
        lab[corem] |= CORE
        lab[rim] |= RIM
        ids[y0:y1, x0:x1][rim] = les.id
        les.dist = dist
        les.wl_core = blur(core.astype(np.float32), 0.8 * px) * les.wl_visibility

    def _draw_rings(self, labels, ids, excl):
        p = self.params
        px = self._px
        busy = (labels & (RIM | CORE | DISTRACTOR)) != 0
        for les in self.lesions:
            y0, y1, x0, x1 = les.bbox
            w_px = les.width_mm * px
            d = les.dist
            ring = (d > w_px + p.ring_gap_mm * px) & (d <= w_px + (p.ring_gap_mm + p.ring_width_mm) * px)
            # other lesions' outlines plus their gap stay out of this ring
            for q in self.lesions:
                if q is les:
                    continue
                qy0, qy1, qx0, qx1 = q.bbox
                oy0, oy1, ox0, ox1 = max(y0, qy0), min(y1, qy1), max(x0, qx0), min(x1, qx1)
                if oy0 < oy1 and ox0 < ox1:
                    near = q.dist[oy0 - qy0:oy1 - qy0, ox0 - qx0:ox1 - qx0] <= q.width_mm * px + p.ring_gap_mm * px
                    ring[oy0 - y0:oy1 - y0, ox0 - x0:ox1 - x0] &= ~near
            ring &= ~busy[y0:y1, x0:x1] & ~excl[y0:y1, x0:x1].astype(bool)
            labels[y0:y1, x0:x1][ring] |= RING
            sub = ids[y0:y1, x0:x1]
            sub[ring] = (sub[ring] & 15) | np.uint8(les.id << 4)

    def _solve_amplitudes(self, nir, ids):
        """Scale each rim's light so that its observed T / B equals the drawn TBR.

        T and B are measured exactly as the truth measures them (mean over the
        rim, median over the final background ring); B barely depends on the
        amplitude (the ring starts past the blur), so a few fixed-point steps
        converge.
        """
        for les in self.lesions:
            y0, y1, x0, x1 = les.bbox
            base = nir[y0:y1, x0:x1]
            ring = (ids[y0:y1, x0:x1] >> 4) == les.id
            light, les.rim_light = les.rim_light, None  # not needed once added
            if not les.rim.any():  # a rim thinner than a pixel at a tiny frame size
                continue
            T0, T1 = float(base[les.rim].mean()), float(light[les.rim].mean())
            a = 1.0
            for _ in range(4):
                B = float(np.median(base[ring] + a * light[ring])) if ring.any() else self.params.background
                a = max((les.tbr * B - T0) / max(T1, 1e-6), 0.0)
            base += a * light

    def _wl_texture(self, rng, labels) -> np.ndarray:
        """The liver's colour texture.  Built on a grid of >= 8 px per mm and
        upsampled: nothing in it is finer, and it is the slowest part of the build."""
        f = max(1, int(self._px // 8))
        px = self._px / f
        H, W = self._wh, self._ww
        h, w = -(-H // f), -(-W // f)

        def small(img):
            return img if f == 1 else cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)

        base = np.array([42, 52, 128], np.float32)  # BGR, liver reddish brown
        mott = smooth_noise(rng, (h, w), 10 * px)
        hue = smooth_noise(rng, (h, w), 16 * px)
        fine = smooth_noise(rng, (h, w), 0.9 * px)
        wl = np.empty((h, w, 3), np.float32)
        bright = 1.0 + 0.14 * mott + 0.05 * fine
        wl[..., 0] = base[0] * bright * (1 - 0.08 * hue)
        wl[..., 1] = base[1] * bright * (1 + 0.05 * hue)
        wl[..., 2] = base[2] * bright * (1 + 0.06 * hue)
        v = small(self._vessel)[..., None]
        wl *= 1.0 - v * np.array([0.25, 0.45, 0.35], np.float32)
        pale = np.zeros((H, W), np.float32)
        for les in self.lesions:  # faint pale tumour under the capsule
            y0, y1, x0, x1 = les.bbox
            pale[y0:y1, x0:x1] = np.maximum(pale[y0:y1, x0:x1], les.wl_core)
        a = small(pale)[..., None]
        wl = wl * (1 - a) + np.array([120, 150, 190], np.float32) * a
        gb = blur(small(((labels & GALLBLADDER) != 0).astype(np.float32)), 1.5 * px)[..., None]
        wl = wl * (1 - 0.7 * gb) + np.array([95, 125, 100], np.float32) * 0.7 * gb
        duct = blur(small(((labels & DUCT) != 0).astype(np.float32)), 0.8 * px)[..., None]
        wl = wl * (1 - 0.15 * duct) + np.array([90, 150, 170], np.float32) * 0.15 * duct
        wl8 = np.clip(wl, 0, 255).astype(np.uint8)
        if f > 1:
            wl8 = cv2.resize(wl8, (W, H), interpolation=cv2.INTER_LINEAR)
        return wl8

    def _glints(self, rng) -> np.ndarray:
        """(WH, WW) uint8 alpha of the specular glints (WL only), inside the view at rest."""
        p = self.params
        px = self._px
        H, W = self._wh, self._ww
        spec = np.zeros((H, W), np.float32)
        m = self._motion.margin
        w, h = self._motion.view_size
        x0, x1, y0, y1 = m, m + w, m, h + m
        for _ in range(int(rng.integers(p.n_speculars[0], p.n_speculars[1] + 1))):
            # a glint: a few small overlapping ellipses along a short streak
            c = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
            ang = rng.uniform(0, 180)
            for _k in range(int(rng.integers(1, 4))):
                off = rng.normal(0, 0.5 * px, 2)
                a = max(1, int(rng.uniform(0.2, 1.2) * px))
                b = max(1, int(a * rng.uniform(0.25, 0.8)))
                cv2.ellipse(spec, (int(c[0] + off[0]), int(c[1] + off[1])), (a, b),
                            ang + rng.normal(0, 15), 0, 360, 1.0, -1, cv2.LINE_AA)
        spec = cv2.GaussianBlur(spec, (0, 0), 0.25 * px)
        return np.clip(spec * 1.6 * 255, 0, 255).astype(np.uint8)
