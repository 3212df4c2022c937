"""The sensor's black level, estimated under an instrument when there is no dark frame.

Without a dark frame the sensor's dark offset sits in T and B alike: TBR
reads low, and it moves at an auto-gain step because the offset is not
scaled by the gain correction.  Pixels that an instrument hides in NIR carry
(almost) no fluorescence, so their raw counts sit at the black level.  This
module estimates that level from them, and :class:`~.normalise.Normaliser`
subtracts it as a constant dark (before the flat, gain and exposure
corrections), reported as ``black_level`` in metrics.csv.

One frame's estimate
--------------------
On the analysis grid (:func:`~.grid.analysis_grid_scale`, point samples of
the WL and of the raw NIR in WL coordinates):

1. instruments are found by :func:`~.instruments.instrument_mask` itself,
   on a ratio that does not need the dark: ``(raw - floor) / (liver - floor)``
   with ``floor`` the ``FLOOR_PERCENTILE`` of the frame's raw counts and
   ``liver`` their median.  (The pipeline's own mask works on NIR that still
   holds the offset; with a large offset the tool is not NIR-dark enough
   against the liver there, and a mask made from the estimate's own output
   would feed back into it.)  Without an instrument in view the darkest
   pixels are cores and vessels, which are tissue-coloured in WL: the grey
   test keeps them out and no estimate is made.
2. the mask is eroded by ``EDGE_MM`` (instrument edges blur into the liver,
   and scattered light and haze glow into the tool from its edges), and its
   largest part must keep ``MIN_AREA_MM2`` and ``MIN_PX`` grid pixels
   ("confidently detected"); else this frame gives no estimate.
3. the estimate is the ``PERCENTILE`` percentile of the raw counts there: a
   low percentile, as what lifts a pixel above the black level (stray
   excitation reflected by the tool, haze, a glow from the liver) only ever
   adds.  Read noise and fixed pattern scatter the pixels both ways; the
   10th percentile sits about 1.3 sigma below their mean, which on the
   phantom (sigma 3-5 counts, a tool at 5 % of the liver level) puts it
   within 2 counts of the true pedestal at either gain.

Over time
---------
The black level is a property of the sensor, not of the scene: the
estimate reported and subtracted is the **median of the last ``WINDOW``
frame estimates**, once ``MIN_FRAMES`` frames have given one (before that:
no estimate, nothing subtracted, ``black_level`` empty).  The median lets
a frame whose mask caught something else pass without effect.  When the
instrument leaves the view the last estimate is kept; a pipeline reset
(seek, NIR lost) keeps it too (the same sensor).  Frame ``i`` is normalised
with the estimate from frames before it (its own raw frame feeds the next).
"""

from __future__ import annotations

from collections import deque
from typing import Optional

import cv2
import numpy as np

from .grid import analysis_grid_scale, nearest_small
from .instruments import instrument_mask
from .rules import RIM_RULES

#: percentile of the frame's raw counts taken as the provisional floor of the
#: NIR-dark test (the darkest pixels: the tool's, when one is in view)
FLOOR_PERCENTILE = 0.5
#: mm an instrument's mask is eroded by before its pixels are read (edge blur, haze)
EDGE_MM = 1.0
#: mm^2 and grid px the eroded instrument must keep to be used
MIN_AREA_MM2 = 8.0
MIN_PX = 40
#: percentile of the raw counts under the eroded instrument: the frame's estimate
PERCENTILE = 10.0
#: frames whose estimates the median runs over, and how many it needs
WINDOW = 15
MIN_FRAMES = 3


class BlackLevelEstimator:
    """The running black-level estimate of one pipeline (NIR raw counts).

    Parameters
    ----------
    mm_per_px : WL mm per pixel, or None (the nominal field,
        ``RIM_RULES.nominal_field_mm`` across)
    analysis_scale : ``segment.analysis_scale`` (the grid the estimate works on)
    """

    def __init__(self, mm_per_px: Optional[float] = None, analysis_scale: float = 0.125):
        self.mm_per_px = mm_per_px
        self.analysis_scale = analysis_scale
        self._recent: deque = deque(maxlen=WINDOW)
        #: the estimate in raw NIR counts, or None (not estimated yet)
        self.value: Optional[float] = None

    def update(self, raw: np.ndarray, wl: Optional[np.ndarray],
               valid: Optional[np.ndarray] = None) -> Optional[float]:
        """Feed one frame; return the (smoothed) estimate, or None.

        Parameters
        ----------
        raw : (H, W) uint16 raw NIR counts in WL pixel coordinates
        wl : (H, W, 3) uint8 BGR, or None (no WL: no instruments, no estimate)
        valid : (H, W) bool or None, pixels inside the NIR field of view
        """
        est = self.frame_estimate(raw, wl, valid)
        if est is not None:
            self._recent.append(est)
            if len(self._recent) >= MIN_FRAMES:
                self.value = float(np.median(self._recent))
        return self.value

    def state_bytes(self) -> bytes:
        """What the next frames' estimates depend on (``Pipeline.state_digest``)."""
        return f"black {list(self._recent)!r} {self.value!r};".encode()

    def frame_estimate(self, raw: np.ndarray, wl: Optional[np.ndarray],
                       valid: Optional[np.ndarray] = None) -> Optional[float]:
        """This frame's estimate (raw counts), or None when no instrument is confidently in view."""
        if wl is None:
            return None
        H, W = raw.shape
        s = analysis_grid_scale(W, self.analysis_scale)
        w, h = max(8, int(round(W * s))), max(8, int(round(H * s)))
        raw_s = nearest_small(raw, w, h).astype(np.float32)
        wl_s = nearest_small(wl, w, h)
        usable = np.ones((h, w), bool) if valid is None else nearest_small(
            valid.view(np.uint8), w, h) > 0
        vals = raw_s[usable]
        if vals.size < MIN_PX:
            return None
        # every 4th pixel: plenty for a 0.5th percentile, and 4x cheaper
        floor, liver = np.percentile(vals[::4] if vals.size >= 64 * MIN_PX else vals,
                                     [FLOOR_PERCENTILE, 50.0])
        if liver - floor <= 0:
            return None
        instr = instrument_mask(wl_s, (raw_s - np.float32(floor)) / np.float32(liver - floor))
        instr &= usable
        if not instr.any():
            return None
        px_per_mm = (w / W) / (self.mm_per_px or RIM_RULES.nominal_field_mm / W)
        r = max(1, int(round(EDGE_MM * px_per_mm)))
        core = cv2.erode(instr.astype(np.uint8), cv2.getStructuringElement(
            cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)), borderType=cv2.BORDER_CONSTANT,
            borderValue=0)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(core, connectivity=8)
        if n < 2:
            return None
        k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        area = int(stats[k, cv2.CC_STAT_AREA])
        if area < max(MIN_PX, MIN_AREA_MM2 * px_per_mm ** 2):
            return None
        return float(np.percentile(raw_s[labels == k], PERCENTILE))
