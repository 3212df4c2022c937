"""The fluorescence mask: pixels above the threshold, with hysteresis in space and time.

A pixel counts as fluorescent when its ratio to the local liver background
is above ``segment.threshold``; a weaker pixel (above ``threshold x
hysteresis``) counts when its connected region reaches the threshold
somewhere, or when it was fluorescent in the previous frame -- so a rim
hovering at the threshold does not flicker.
"""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from ._kernels.segment import hysteresis_masks, label_stats, relabel
from ._validate import frame_dims, require, require_optional

# placeholders for absent optional masks (numba needs an array of the right type)
_NO_MASK = np.zeros((1, 1), np.bool_)
_NO_MASK_U8 = np.zeros((1, 1), np.uint8)


def hysteresis_components(ratio: np.ndarray, high: float, low: float,
                          prev: Optional[np.ndarray] = None, min_px: int = 3,
                          valid: Optional[np.ndarray] = None):
    """Fluorescent pixels with spatial and temporal hysteresis, and their components.

    A pixel above ``low`` is kept when its connected region (8-connected)
    reaches ``high`` somewhere, or when it was fluorescent in ``prev``, the
    previous frame's mask; components under ``min_px`` pixels are dropped.
    One labelling pass gives the mask and the components.

    Parameters
    ----------
    ratio : (h, w) float32, NIR / local background
    high, low : thresholds, x background
    prev : (h, w) uint8 0/1 or None, last frame's mask (another shape: ignored)
    min_px : least component area, px
    valid : (h, w) bool or None, pixels that may be fluorescent

    Returns
    -------
    mask : (h, w) uint8 0/1
    labels : (h, w) int32, component labels of ``mask`` (dropped ones are 0)
    stats : (n, 5) int32 as from ``cv2.connectedComponentsWithStats``

    Raises
    ------
    TypeError, ValueError
        for another dtype, shape or layout (all C-contiguous)
    """
    require("ratio", ratio, np.float32, ("h", "w"))
    require_optional("prev", prev, np.uint8, ("h", "w"))
    require_optional("valid", valid, np.bool_, frame_dims(ratio.shape))
    h, w = ratio.shape
    # (thresholds in the array's dtype, as numpy compares an array with a Python float)
    lo, hi = ratio.dtype.type(low), ratio.dtype.type(high)
    use_prev = prev is not None and prev.shape == ratio.shape
    weak = np.empty((h, w), np.uint8)
    seeds = np.empty((h, w), np.bool_)
    hysteresis_masks(ratio, lo, hi, valid if valid is not None else _NO_MASK,
                     prev if use_prev else _NO_MASK_U8, valid is not None, use_prev, weak, seeds)
    # the labels alone (OpenCV's statistics pass costs ~3x the labelling on
    # this grid); boxes and areas come with the seed test in one numba pass
    n, labels = cv2.connectedComponents(weak, connectivity=8)
    stats = np.empty((n, 5), np.int32)
    hit = np.zeros(n, np.bool_)
    label_stats(labels, seeds, stats, hit)
    if n <= 1:
        return np.zeros(ratio.shape, np.uint8), labels, stats
    hit &= stats[:, cv2.CC_STAT_AREA] >= min_px
    keep_label = np.where(hit, np.arange(n, dtype=np.int32), 0).astype(np.int32)
    mask = np.empty((h, w), np.uint8)
    relabel(labels, keep_label, mask)
    stats[~hit, cv2.CC_STAT_AREA] = 0  # dropped components: never candidates
    return mask, labels, stats
