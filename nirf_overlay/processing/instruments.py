"""Instruments: grey in white light **and** dark in NIR.

So a tool's shadow is never a tumour core and never pulls the background
down.  Specular highlights are also unsaturated but bright in WL and normal
in NIR, so the NIR test keeps them out; a tumour core is dark in NIR but
tissue-coloured in WL, so the saturation test keeps it out.  The limits are
:data:`~.rules.RIM_RULES` (``instrument_*``).
"""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from ._kernels.segment import grey_and_dark
from .masks import K3
from .rules import RIM_RULES


def instrument_mask(wl_small: Optional[np.ndarray], ratio: np.ndarray) -> np.ndarray:
    """Instruments on the analysis grid: grey (low saturation) in white light and dark in NIR.

    Parameters
    ----------
    wl_small : (h, w, 3) uint8 BGR point samples of the WL frame, or None
        (no WL: no instruments)
    ratio : (h, w) float32, NIR / the global liver level

    Returns
    -------
    (h, w) bool, grown by a pixel (instrument edges blur into the liver in
    both channels)
    """
    if wl_small is None:
        return np.zeros(ratio.shape, bool)
    # grey and NIR-dark in one pass, with OpenCV's own 8-bit S arithmetic (no
    # HSV image, no strided channel views); no upper limit on V: the shaft's
    # own highlight is white but NIR-dark
    instr = np.empty(ratio.shape, np.bool_)
    grey_and_dark(wl_small, ratio, RIM_RULES.instrument_max_saturation, RIM_RULES.instrument_min_value,
                  ratio.dtype.type(RIM_RULES.instrument_nir_dark), _SDIV, instr)
    if instr.any():
        m = instr.astype(np.uint8)
        # (open: specks; close: the shaft's texture)
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
        m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, K3)
        # grow a little: instrument edges blur into the liver in both channels
        m = cv2.dilate(m, K3)
        instr = m.astype(bool)
    return instr


def unblock_fluorescence(blocked: np.ndarray, img: np.ndarray, background: float) -> np.ndarray:
    """Clear ``blocked`` (in place) where ``img`` is brighter than the liver: that is seen tissue.

    The instrument mask is found on the coarse analysis grid and grown by a
    pixel there (:func:`instrument_mask`); on a finer grid it is blocky and
    reaches a grid pixel past the tool's edge.  A tool blocks the NIR, so a
    pixel in that margin brighter than the liver level is fluorescence in
    view -- the rim running up to the tool -- and its signal counts (at the
    half-maximum edge a rim half covered by the tool is still above B).
    Pixels at or below liver level stay blocked: there a tool's edge and a
    dark core are not told apart.

    Parameters
    ----------
    blocked : (h, w) uint8 0/1, the blocked mask on ``img``'s grid
    img : (h, w) float32, NIR on the same grid (area averages)
    background : the liver level B, same units as ``img``

    Returns
    -------
    ``blocked``
    """
    if cv2.countNonZero(blocked):  # (most lesions have only the frame edge or nothing blocked)
        blocked &= img <= np.float32(background)
    return blocked


# OpenCV's 8-bit BGR -> HSV saturation: S = ((V - min) * _SDIV[V] + 2**11) >> 12
# with _SDIV[v] = round(255 * 2**12 / v) (checked equal to cv2.cvtColor's S for
# all 2**24 colours)
_SDIV = np.zeros(256, np.int32)
_SDIV[1:] = np.round((255 << 12) / np.arange(1, 256)).astype(np.int32)
