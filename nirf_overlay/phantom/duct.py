"""A bile duct that runs into a rim: where it meets the rim and which way it comes.

Ordinarily the phantom's duct keeps 2.5 mm off every rim; with
``PhantomParams.duct_touch`` it meets the first lesion's rim instead, in the
middle of the rim's arc, at one of :data:`DUCT_TOUCH` angles:

- ``tangent``: it runs past the rim's outer edge, touching it at one point;
- ``oblique``: it comes in at 45 degrees to the rim's outward normal and ends
  on the rim (a duct diving deeper under the lesion);
- ``radial``: it comes straight in along the normal and ends on the rim.

With ``PhantomParams.duct_touch_tool`` the instrument's tip is held at the
point where the duct meets the rim (:func:`tool_tip_at_touch`): the jaws hide
the junction and part of the rim and core, and the duct's end shows beside
them -- what a rule that must not cut a rim's arc behind a tool meets.

The duct's pixels stop at the rim's outer outline (they never overlap the rim
or the core), so the truth's duct mask is the duct as today and a rim pixel
on it is a segmentation error.
"""

from __future__ import annotations

import math

import numpy as np

#: how a touching duct meets the rim (see the module docstring)
DUCT_TOUCH = ("tangent", "oblique", "radial")

#: mm.  Length of the touching duct's path (about a third of the view).
TOUCH_LENGTH_MM = 25.0


def touch_point(les, px: float) -> tuple[np.ndarray, np.ndarray]:
    """World point on the lesion's outer rim outline in the middle of its arc, and the outward normal.

    ``les`` is a drawn :class:`~.scene.Lesion` (its ``dist``, ``bbox``,
    ``center``, ``width_mm`` and ``arc_center_rad`` set); ``px`` world px per mm.
    """
    y0, _y1, x0, _x1 = les.bbox
    d = les.dist
    edge = les.width_mm * px + 0.25  # the rim is dist <= w + 0.25 (see Scene._draw_lesion)
    u = np.array([math.cos(les.arc_center_rad), math.sin(les.arc_center_rad)])
    c = np.asarray(les.center, float)
    t = None
    for s in np.arange(0.0, 3.0 * les.radius_px + 2 * edge, 0.25):
        x, y = c + s * u
        iy, ix = int(round(y)) - y0, int(round(x)) - x0
        if not (0 <= iy < d.shape[0] and 0 <= ix < d.shape[1]):
            break
        if d[iy, ix] > edge:
            t = c + s * u
            break
    if t is None:
        raise ValueError(f"lesion {les.id}: no outer rim edge along its arc's middle")
    # the outline's normal: the gradient of the distance to the core
    iy, ix = int(round(t[1])) - y0, int(round(t[0])) - x0
    sy = slice(max(iy - 2, 0), iy + 3)
    sx = slice(max(ix - 2, 0), ix + 3)
    gy, gx = np.gradient(d[sy, sx].astype(np.float64))
    n = np.array([gx.mean(), gy.mean()])
    norm = float(np.hypot(*n))
    n = u if norm < 1e-6 else n / norm
    return t, n


def touching_duct_path(les, kind: str, width_px: float, px: float) -> np.ndarray:
    """(N, 2) world points of a duct of ``width_px`` meeting ``les``'s rim as ``kind`` says.

    The path reaches a little into the rim (radial, oblique) or runs along its
    outer edge (tangent); the caller cuts the duct's mask at the rim's outer
    outline, so it ends flush on the rim.
    """
    if kind not in DUCT_TOUCH:
        raise ValueError(f"duct touch {kind!r}: one of {', '.join(DUCT_TOUCH)}")
    t, n = touch_point(les, px)
    tang = np.array([-n[1], n[0]])
    length = TOUCH_LENGTH_MM * px
    s = np.linspace(0.0, 1.0, max(2, int(length / (0.5 * px))))[:, None]
    if kind == "tangent":
        # centre line half a width out (less half a pixel, so the two touch)
        c = t + (0.5 * width_px - 0.5) * n
        return c - 0.5 * length * tang + s * length * tang
    ang = 0.0 if kind == "radial" else math.radians(45.0)
    inward = -(math.cos(ang) * n + math.sin(ang) * tang)
    end = t + (0.5 * width_px + 2.0) * inward
    return end - (1.0 - s) * length * inward


def tool_tip_at_touch(les, px: float, M: np.ndarray) -> np.ndarray:
    """(2,) view x, y of where the touching duct meets ``les``'s rim (:func:`touch_point`),
    through the world-to-view affine ``M`` ((2, 3)): where the instrument's tip is held."""
    t, _n = touch_point(les, px)
    return M[:, :2] @ t + M[:, 2]


def cut_at_rims(mask: np.ndarray, lesions, px: float) -> None:
    """Clear ``mask`` (world uint8) on every lesion's rim and core (in place): the duct ends on the rim."""
    for les in lesions:
        y0, y1, x0, x1 = les.bbox
        mask[y0:y1, x0:x1][les.dist <= les.width_mm * px + 0.25] = 0
