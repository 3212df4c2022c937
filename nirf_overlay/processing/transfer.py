"""The pipeline's entry: display-encoded NIR to relative linear signal, and what the ratios are of.

The calibration's :class:`~nirf_overlay.calibration.transfer.Transfer` (the
curve; ``--nir-transfer`` or the profile's ``nir_transfer``) is applied here,
before the normalise stage, as one table look-up per frame (``np.take``);
the normalise and composite kernels see NIR as they always have (``uint16``
with a bit depth).  :func:`nir_signal` is the one rule for whether an
output's ratios are of linear signal or of display values.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

#: the words outputs use (``nir_signal`` column, HUD, snapshot, batch report)
LINEAR, DISPLAY = "linear", "display"


def nir_signal(transfer, nir_bits: int) -> str:
    """``"linear"`` or ``"display"``: what the NIR's ratios are ratios of.

    A transfer (any, ``linear`` included) says what the values are.  Without
    one, NIR of more than 8 bits is a camera's raw counts (linear); 8-bit NIR
    is what a tower or recorder shows: display values, measured as they are.
    """
    if transfer is not None or nir_bits > 8:
        return LINEAR
    return DISPLAY


class NirEntry:
    """Applies the calibration's transfer (or none) to each frame's NIR.

    Parameters
    ----------
    transfer : :class:`~nirf_overlay.calibration.transfer.Transfer` or None
    """

    def __init__(self, transfer=None):
        self.transfer = transfer

    @property
    def encoded(self) -> bool:
        """True when the NIR arrives display-encoded and this entry decodes it (a
        transfer other than ``linear``): the tower set its own black before encoding,
        and a dark given with it is in the same display values as the frames."""
        return self.transfer is not None and not self.transfer.linear

    def linear_dark(self, dark: np.ndarray, nir_bits: int) -> np.ndarray:
        """A dark frame in the input's display values (``nir_bits``), decoded like the
        frames, so that it is subtracted on the linear scale (uint16, 16-bit scale)."""
        if not self.encoded:
            return dark
        codes = np.clip(np.rint(np.asarray(dark, np.float64)), 0, (1 << int(nir_bits)) - 1)
        return self.transfer.apply(codes.astype(np.uint16), nir_bits)[0]

    def __call__(self, nir: np.ndarray, nir_bits: int) -> tuple[np.ndarray, int, str]:
        """``(nir uint16, its bit depth, nir_signal)`` for the normalise stage."""
        signal = nir_signal(self.transfer, nir_bits)
        if self.transfer is None:
            return nir, nir_bits, signal
        nir, bits = self.transfer.apply(nir, nir_bits)
        return nir, bits, signal

    def signal(self, nir_bits: Optional[int]) -> str:
        """What a frame of ``nir_bits`` measures (also while its NIR is lost)."""
        return nir_signal(self.transfer, int(nir_bits or 16))
