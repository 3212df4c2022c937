"""The coarse analysis grid: its scale, the frame brought down onto it, masks back up.

The rim analysis segments on a grid ``segment.analysis_scale`` of the frame
(never coarser than ``RIM_RULES.grid_min_px_across``), and pastes the
per-lesion rims it refines into frame-size masks.  The buffers those
steps reuse from frame to frame live here too.
"""

from __future__ import annotations

import cv2
import numpy as np

from ._kernels.grid import pyramid2, sample_every, upscale_fluo
from .rules import RIM_RULES


def analysis_grid_scale(width: int, analysis_scale: float) -> float:
    """Scale of the coarse analysis grid for a frame ``width`` pixels wide.

    ``segment.analysis_scale``, but never coarser than the power-of-two
    fraction that keeps ``RIM_RULES.grid_min_px_across`` (240) pixels
    across: a 1080p frame is analysed on 240 x 135 at the default 0.125,
    1280 x 720 on 320 x 180, 640 x 360 on 320 x 180.  Boundaries and
    measurements are refined per lesion at finer resolution (:mod:`.refine`),
    so the grid only has to find them.
    """
    s = 1.0
    while width * s / 2.0 >= RIM_RULES.grid_min_px_across and s / 2.0 >= analysis_scale - 1e-9:
        s /= 2.0
    return float(max(s, analysis_scale)) if analysis_scale > s else s


def downscale(img: np.ndarray, w: int, h: int, scratch: "Scratch") -> tuple[np.ndarray, dict]:
    """Area-average ``img`` to (h, w), by halving where it fits (OpenCV's fast path).

    ``img`` is (H, W) float32, C-contiguous.  Returns the result and the
    pyramid ``{scale: image}`` of the halving steps (scale 1.0 is ``img``
    itself), which the per-lesion refinement crops instead of resizing
    again.  Where the frame allows, the first two halvings are made by one
    parallel numba pass into ``scratch``'s buffers (bit-identical to
    OpenCV's; they are only valid until the next frame).
    """
    H0, W0 = img.shape[:2]
    pyr = {1.0: img}
    H, W = H0, W0
    if H % 4 == 0 and W % 4 == 0 and W // 4 >= w and H // 4 >= h:
        half = scratch.get("half", (H // 2, W // 2), np.float32)
        quarter = scratch.get("quarter", (H // 4, W // 4), np.float32)
        pyramid2(img, half, quarter)
        pyr[(W // 2) / W0] = half
        pyr[(W // 4) / W0] = quarter
        img, H, W = quarter, H // 4, W // 4
    while W % 2 == 0 and H % 2 == 0 and W // 2 >= w and H // 2 >= h:
        img = cv2.resize(img, (W // 2, H // 2), interpolation=cv2.INTER_AREA)
        H, W = img.shape[:2]
        pyr[W / W0] = img
    if (W, H) == (w, h):
        return img, pyr
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA), pyr


def nearest_small(img: np.ndarray, w: int, h: int) -> np.ndarray:
    """Nearest-neighbour downscale to (h, w): a strided view for whole factors.

    For a whole factor ``cv2.resize(..., INTER_NEAREST)`` samples source
    pixel ``k * factor``, which is exactly ``img[::fy, ::fx]`` (and ~20x
    cheaper than resizing a 1080p colour frame); a numba gather of those
    pixels is ~10x cheaper again than numpy's strided copy.
    """
    H, W = img.shape[:2]
    if W % w == 0 and H % h == 0:
        if (img.dtype == np.uint8 and img.flags.c_contiguous
                and (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3))):
            out = np.empty((h, w) + img.shape[2:], img.dtype)
            sample_every(img, H // h, W // w, out)
            return out
        return np.ascontiguousarray(img[::H // h, ::W // w])
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_NEAREST)


def upscale_mask(mask: np.ndarray, W: int, H: int) -> np.ndarray:
    """Nearest-neighbour upscale of a uint8 mask; row replication for integer factors.

    (cv2.resize's nearest path costs ~0.75 ms at 1080p; repeating rows is ~0.1 ms.)
    """
    h, w = mask.shape
    if W % w == 0 and H % h == 0:
        fx, fy = W // w, H // h
        rows = np.repeat(mask, fx, axis=1) if fx > 1 else mask
        out = np.empty((h, fy, W), np.uint8)
        out[:] = rows[:, None, :]
        return out.reshape(H, W)
    return cv2.resize(mask, (W, H), interpolation=cv2.INTER_NEAREST)


class Scratch:
    """Per-frame work buffers kept between frames (allocating a 4K pyramid
    level costs page faults every frame).  Their contents never carry over
    into an output, so this is a plain object that
    :meth:`~.pipeline.Pipeline.state_digest` does not hash."""

    def __init__(self):
        self.bufs: dict = {}

    def get(self, name: str, shape: tuple, dtype) -> np.ndarray:
        b = self.bufs.get(name)
        if b is None or b.shape != shape or b.dtype != dtype:
            b = self.bufs[name] = np.empty(shape, dtype)
        return b


class MaskRing:
    """Full-size mask buffers used in turn (as the Compositor's output ring).

    ``Analysis.rim_mask`` / ``fluorescence_mask`` of a frame stay valid for
    ``n - 1`` further frames; a consumer that keeps them longer copies them
    (the recorder, export and evaluate use them at once).  Holds no state
    that changes any output, so it is a plain object that
    :meth:`~.pipeline.Pipeline.state_digest` does not hash.
    """

    def __init__(self, n: int = 3):
        self.n = int(n)
        self.bufs: list = []
        self.i = 0

    def next(self, H: int, W: int) -> tuple[np.ndarray, np.ndarray]:
        """Two (H, W) uint8 buffers (rim, fluorescence), contents undefined."""
        if not self.bufs or self.bufs[0][0].shape != (H, W):
            self.bufs = [(np.empty((H, W), np.uint8), np.empty((H, W), np.uint8)) for _ in range(self.n)]
            self.i = 0
        pair = self.bufs[self.i]
        self.i = (self.i + 1) % self.n
        return pair

    def from_grid(self, fluo: np.ndarray, H: int, W: int) -> tuple[np.ndarray, np.ndarray]:
        """(H, W) uint8 frame masks: a cleared rim mask, and ``fluo`` (grid, 0/1) as 0/255.

        For whole upscale factors one pass writes both into the next ring
        buffers (the rims are pasted into both afterwards, :func:`paste_max`);
        otherwise new arrays.
        """
        h, w = fluo.shape
        if W % w == 0 and H % h == 0:
            rim_mask, fluo_full = self.next(H, W)
            upscale_fluo(fluo, H // h, W // w, fluo_full, rim_mask)
            return rim_mask, fluo_full
        return np.zeros((H, W), np.uint8), upscale_mask(fluo * np.uint8(255), W, H)


def paste_max(full: np.ndarray, part: np.ndarray, x0: int, y0: int) -> None:
    """``full[y0:, x0:]`` = max(itself, ``part``) over ``part``'s size, in place.

    ``full`` (H, W) uint8; ``part`` (h, w) uint8 0/255.  (cv2.max writes
    the strided frame view in place, ~5x faster than numpy's strided maximum.)
    """
    rh, rw = part.shape
    view = full[y0:y0 + rh, x0:x0 + rw]
    out = cv2.max(view, part, dst=view)
    if out is not view:  # (OpenCV could not write the view in place)
        view[...] = out
