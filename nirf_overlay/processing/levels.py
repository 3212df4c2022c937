"""Display levels: which normalised NIR value is black and which is white.

Levels come from percentiles of a *subsampled* histogram of the filtered NIR
(built inside the normalisation pass, so the frame is never rescanned and
never sorted), then follow the scene through an exponential moving average so
that the picture does not flicker when a bright instrument or bile drop comes
and goes.

Compression maps the linear position ``x = (v - lo) / (hi - lo)`` (clipped to
0..1) to the display level ``t``:

* ``linear``: ``t = x``
* ``gamma``:  ``t = x ** gamma``
* ``log``:    ``t = log(1 + k x) / log(1 + k)`` with ``k = levels.log_strength``

``auto`` (the default) is ``log`` for linear signal and, for display-encoded
NIR, ``linear`` between black and full scale (:func:`shown_as_encoded`):
its tower has compressed and gained it for the eye already; compressing it
again moved a real tower frame's median grey from 136 to 215.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ._kernels.sample import percentile_from_hist


def shown_as_encoded(compression: str, nir_signal: str) -> bool:
    """True when display-encoded NIR is shown as its tower encoded it (``auto``):
    no second compression, and levels from black to the full scale instead of
    percentiles (the tower auto-gained it already; a field that fluoresces
    everywhere then stays bright instead of being stretched to its own noise)."""
    return compression == "auto" and nir_signal == "display"


def display_compression(compression: str, nir_signal: str) -> str:
    """The compression ``levels.compression`` means for NIR whose values are ``nir_signal``."""
    if compression != "auto":
        return compression  # the user's explicit choice wins
    return "linear" if shown_as_encoded(compression, nir_signal) else "log"


def compress(x: np.ndarray, compression: str, *, gamma: float = 0.6,
             log_strength: float = 100.0) -> np.ndarray:
    """Display level ``t`` (0..1) for linear positions ``x`` (any shape, clipped to 0..1).

    ``auto`` here is its meaning for linear signal (log); the pipeline resolves
    it for display-encoded NIR first (:func:`display_compression`).
    """
    compression = display_compression(compression, "linear")
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    if compression == "linear":
        return x
    if compression == "gamma":
        return x ** float(gamma)
    if compression == "log":
        k = float(log_strength)
        return np.log1p(k * x) / np.log1p(k)
    raise ValueError(f"unknown compression {compression!r}")


@dataclass
class Levels:
    """Current display levels in normalised counts."""

    lo: float
    hi: float
    median: float  # of the sampled pixels: a fallback liver level


class DisplayLevels:
    """Histogram percentiles smoothed over time.

    ``update(hist, hist_scale, settings)`` takes the summed histogram of the
    frame (bin ``b`` spans ``b / hist_scale .. (b + 1) / hist_scale``
    normalised counts) and returns the smoothed :class:`Levels`.  The first
    frame after :meth:`reset` sets the levels directly.
    """

    def __init__(self):
        self._fractions = np.zeros(3, dtype=np.float64)
        self._bins = np.zeros(3, dtype=np.float64)
        self.levels: Optional[Levels] = None

    def reset(self) -> None:
        self.levels = None

    def target(self, hist: np.ndarray, hist_scale: float, low_pct: float, high_pct: float):
        """Unsmoothed ``(lo, hi, median)`` of one histogram, normalised counts."""
        self._fractions[0] = low_pct / 100.0
        self._fractions[1] = 0.5
        self._fractions[2] = high_pct / 100.0
        # fractions must be ascending for the single cumulative scan
        order = np.argsort(self._fractions, kind="stable")
        fr = np.ascontiguousarray(self._fractions[order])
        percentile_from_hist(hist, fr, self._bins)
        vals = np.empty(3)
        vals[order] = self._bins / float(hist_scale)
        return float(vals[0]), float(vals[2]), float(vals[1])

    def update(self, hist: np.ndarray, hist_scale: float, settings) -> Levels:
        lv = settings.levels
        lo, hi, med = self.target(hist, hist_scale, lv.low_percentile, lv.high_percentile)
        if hist.sum() == 0:  # nothing sampled (empty ROI): keep what we had
            return self.levels or Levels(0.0, 1.0, 0.0)
        if self.levels is None:
            self.levels = Levels(lo, hi, med)
        else:
            s = float(lv.smoothing)
            cur = self.levels
            self.levels = Levels(s * cur.lo + (1 - s) * lo, s * cur.hi + (1 - s) * hi,
                                 s * cur.median + (1 - s) * med)
        # a flat picture would give hi == lo: keep a usable range
        min_span = max(1e-3, 1e-3 * abs(self.levels.hi))
        if self.levels.hi - self.levels.lo < min_span:
            self.levels.hi = self.levels.lo + min_span
        return self.levels
