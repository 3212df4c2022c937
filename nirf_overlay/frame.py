"""The frame model every part of nirf-overlay consumes.

Channel order
-------------
White light is **BGR**, ``(H, W, 3) uint8``, everywhere in the core: it is what
OpenCV decodes and encodes, so no conversion happens on the hot path.  The GUI
hands the same buffer to Qt as ``QImage.Format_BGR888``.

NIR is ``(H, W) uint16`` raw counts, never rescaled.  ``nir_bits`` says how
many of the 16 bits the camera fills (8 for an 8-bit stream, 12 for a 12-bit
sensor in a 16-bit container, 16 for full range); a pixel at
``2**nir_bits - 1`` is saturated.

A source never writes into an array it has handed out (a new array per
frame, or read-only buffers it never changes), so consumers (the recorder,
the live analysis thread) may keep a pair's arrays without copying them.

Times are ``time.monotonic()`` seconds for live sources and presentation
times (seconds from the start) for files and sessions.  ``arrival`` is always
``time.monotonic()`` at the moment the source handed the pair out, so the
viewer can measure the latency it adds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np


@dataclass
class FramePair:
    """One white-light frame and the NIR frame paired with it.

    Attributes
    ----------
    wl : (H, W, 3) uint8, BGR
    nir : (H, W) uint16 raw counts, or ``None`` while the NIR channel is lost
    nir_bits : significant bits of ``nir`` (8..16)
    index : frame index from the start of the source (0-based)
    wl_time, nir_time : capture time of each channel, seconds
    arrival : ``time.monotonic()`` when the pair was handed out
    exposure_ms, gain : what the source reports, ``None`` when unknown
    truth : ground truth for phantom frames (:class:`nirf_overlay.phantom.Truth`)
    meta : anything else the source knows (flags such as ``dropped_before``)
    """

    wl: np.ndarray
    nir: Optional[np.ndarray]
    nir_bits: int = 16
    index: int = 0
    wl_time: float = 0.0
    nir_time: float = 0.0
    arrival: float = 0.0
    exposure_ms: Optional[float] = None
    gain: Optional[float] = None
    truth: Any = None
    meta: dict = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the white-light frame."""
        return int(self.wl.shape[1]), int(self.wl.shape[0])

    @property
    def nir_full_scale(self) -> int:
        """The count a saturated NIR pixel reads."""
        return (1 << int(self.nir_bits)) - 1

    @property
    def nir_status(self) -> str:
        """One of :data:`NIR_STATUSES`: ``present`` (a NIR frame came with this WL
        frame), ``stale`` (none within the pairing tolerance, the NIR stream not
        yet declared lost: a gap) or ``lost`` (the NIR stream is gone)."""
        if self.nir is not None:
            return "present"
        return "stale" if self.meta.get("nir_status") == "stale" else "lost"

    @property
    def dropped_before(self) -> int:
        """Frames lost just before this one: dropped by the source (``dropped_before``)
        plus, for a recording, frames the recorder could not write (``not_written_before``)."""
        total = 0
        for key in ("dropped_before", "not_written_before"):
            try:
                total += max(0, int(self.meta.get(key) or 0))
            except (TypeError, ValueError):
                pass
        return total


#: what ``FramePair.nir_status`` (and the ``nir`` column of every table) can say
NIR_STATUSES = ("present", "stale", "lost")


# -- a narrower sensor in a 16-bit container ------------------------------------------------
#: sensor depths a 16-bit container commonly holds (10-, 12- and 14-bit cameras)
CONTAINER_DEPTHS = (10, 12, 14)


def container_bits(largest: float, nir_bits: int) -> Optional[int]:
    """The smallest common sensor depth all values fit in, when narrower than ``nir_bits``.

    A 12-bit camera's frames stored as 16-bit never exceed 4095; that alone cannot tell
    it from dim 16-bit data, so this is a hint for a message, never a decision.  Only a
    16-bit depth is questioned: a narrower one was given on purpose.
    """
    if int(nir_bits) != 16:
        return None
    for bits in CONTAINER_DEPTHS:
        if largest <= (1 << bits) - 1:
            return bits
    return None


def clip_count(largest: float, nir_bits: int) -> int:
    """The count a saturated pixel reads, given the ``largest`` value seen.

    The full scale of ``nir_bits``, unless the values stop exactly at the full scale
    of a narrower depth (:func:`container_bits`): a 12-bit camera in a 16-bit container
    clips at 4095, and a pixel there is saturated although it is far below 65535.
    (16-bit data whose largest value is exactly 4095 are taken as clipped there too;
    a pixel or two, where a clipped camera gives whole patches.)
    """
    narrow = container_bits(largest, nir_bits)
    if narrow is not None and int(largest) == (1 << narrow) - 1:
        return int(largest)
    return (1 << int(nir_bits)) - 1


@dataclass
class SourceInfo:
    """What a source knows about itself (shown in the HUD, written to sessions)."""

    description: str
    size: tuple[int, int]  # (width, height) of WL, = NIR size
    fps: float
    nir_bits: int = 16
    live: bool = False
    frame_count: Optional[int] = None  # None for live or unknown length
    device: str = ""
    exposure_ms: Optional[float] = None
    gain: Optional[float] = None
    seekable: bool = False
    extra: dict = field(default_factory=dict)
    # the user asked for whole paths in what is written (--keep-paths; nirf_overlay.privacy)
    keep_paths: bool = False


@dataclass
class SourceStats:
    """Counters a source keeps so that nothing is dropped silently."""

    delivered: int = 0
    dropped: int = 0  # pairs replaced by a newer one before anyone read them
    unpaired_wl: int = 0  # WL frames that found no NIR partner in tolerance
    unpaired_nir: int = 0
    reconnects: int = 0
    status: str = "ok"  # ok | reconnecting | nir_lost | ended | error
    message: str = ""  # last problem, in plain words
    length_mismatch: int = 0  # |WL frames - NIR frames| for file pairs

    def as_dict(self) -> dict:
        return dict(self.__dict__)
