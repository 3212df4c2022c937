"""Frames for calibration: NIR alone (dark, flat) or WL + NIR pairs (register).

Dark and flat need only the NIR camera, so ``--nir X`` on its own is a valid
calibration input here (the pair sources insist on both channels).  It is read
with this package's own readers, so a NIR stream means exactly the same thing
here as everywhere else: 16-bit stays 16-bit, 8-bit is widened without
scaling, a colour stream is refused.  Any other source (``--wl/--nir``,
``--combined``, a session, ``--phantom``) is opened with
:func:`~nirf_overlay.sources.open_source` and its pairs are used.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from ..errors import CalibrationError, SourceError
from ._cv import nir_from_frame, nir_mode
from .inputs import classify
from .live import open_live
from .readers import first_frame, open_reader
from .registry import kind_of, open_source

__all__ = ["Capture", "CalibrationInput", "open_calibration_input", "collect", "iter_captures"]


@dataclass
class Capture:
    """One calibration frame.

    Attributes
    ----------
    wl : (H, W, 3) uint8 BGR, or None for a NIR-only input
    nir : (H, W) uint16 raw counts
    nir_bits : significant bits of ``nir``
    exposure_ms, gain : as the source reports them, or None
    index : frame index from the start of the input
    """

    wl: Optional[np.ndarray]
    nir: np.ndarray
    nir_bits: int
    exposure_ms: Optional[float] = None
    gain: Optional[float] = None
    index: int = 0


class CalibrationInput:
    """Where calibration frames come from; see :func:`open_calibration_input`.

    Attributes
    ----------
    description : str
    size : (W, H) of the NIR frames
    nir_bits : int
    has_wl : bool
    live : bool
    """

    description: str = ""
    size: tuple[int, int] = (0, 0)
    nir_bits: int = 16
    has_wl: bool = False
    live: bool = False

    def read(self, timeout: Optional[float] = None) -> Optional[Capture]:  # pragma: no cover
        raise NotImplementedError

    def rewind(self) -> bool:
        """Start again from the first frame; False when the input cannot."""
        return False

    def close(self) -> None:  # pragma: no cover
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class _PairInput(CalibrationInput):
    """Any :class:`~nirf_overlay.sources.FrameSource`; pairs with NIR lost are skipped."""

    def __init__(self, source):
        self._source = source
        info = source.info
        self.description = info.description
        self.size = tuple(info.size)
        self.nir_bits = int(info.nir_bits)
        self.has_wl = True
        self.live = bool(info.live)
        self._seekable = bool(info.seekable)

    def read(self, timeout=None):
        while True:
            pair = self._source.read(timeout)
            if pair is None:
                return None
            if pair.nir is None:
                continue  # NIR lost for this pair: nothing to calibrate with
            return Capture(pair.wl, pair.nir, int(pair.nir_bits), pair.exposure_ms, pair.gain,
                           int(pair.index))

    def rewind(self):
        if not self._seekable:
            return False
        self._source.seek(0)
        return True

    def close(self):
        self._source.close()


class _NirInput(CalibrationInput):
    """One NIR stream on its own: a file, an image sequence, a device or a URL."""

    def __init__(self, spec):
        text = spec.nir
        self._name = text
        kind = classify(text)
        self.live = kind.live
        self._reader = self._cap = None
        if kind.live:
            self._cap, frame, props = open_live(kind, text, raw=True, spec=spec)
            self._pending = frame
        else:
            self._reader = open_reader(kind, text, raw=True, fps=spec.fps)
            try:
                frame = first_frame(self._reader)
            except Exception:
                self._reader.close()
                raise
            props = self._reader.props
        self._mode = nir_mode(frame, text, spec.nir_bits)
        nir = nir_from_frame(frame, self._mode, text)
        self.size = (int(nir.shape[1]), int(nir.shape[0]))
        self.nir_bits = self._mode.bits
        self.description = f"NIR {text}"
        self._exposure = props.get("exposure_ms")
        self._gain = props.get("gain")
        self._index = 0

    def read(self, timeout=None):
        if self._reader is not None:
            got = self._reader.read()
            if got is None:
                return None
            frame = got[0]
        else:
            frame, self._pending = self._pending, None
            if frame is None:
                ok, frame = self._cap.read()
                if not ok or frame is None:
                    raise SourceError(f"{self._name}: the NIR stream stopped delivering frames")
        nir = nir_from_frame(frame, self._mode, self._name)
        if (nir.shape[1], nir.shape[0]) != self.size:
            raise SourceError(f"{self._name}: frame {self._index} is {nir.shape[1]}x{nir.shape[0]}, "
                              f"the first was {self.size[0]}x{self.size[1]}")
        cap = Capture(None, nir, self.nir_bits, self._exposure, self._gain, self._index)
        self._index += 1
        return cap

    def rewind(self):
        if self._reader is None:
            return False
        self._reader.seek(0)
        self._index = 0
        return True

    def close(self):
        if self._reader is not None:
            self._reader.close()
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def open_calibration_input(spec, *, need_wl: bool, what: str = "calibrate") -> CalibrationInput:
    """Open the frames a calibration step reads.

    Parameters
    ----------
    spec : SourceSpec
        ``--nir`` alone opens the NIR stream by itself (dark, flat); anything
        else goes through :func:`~nirf_overlay.sources.open_source`.
    need_wl : bool
        True for registration, which needs both channels.
    what : str
        Names the step in messages.

    Raises
    ------
    SourceError, CalibrationError
        One line: no source given, WL missing for registration, or the
        source's own error.
    """
    if kind_of(spec).name == "sample":
        need = "--wl and --nir (or --combined)" if need_wl else "--nir"
        raise CalibrationError(f"{what}: no source given; this step needs {need} "
                               "(the bundled sample is a scene, not a calibration target)")
    if spec.nir and kind_of(replace(spec, nir=None)).name == "sample":  # --nir and nothing else
        if need_wl:
            raise CalibrationError(f"{what}: --wl: missing; registration needs both channels")
        return _NirInput(spec)
    return _PairInput(open_source(spec))


def iter_captures(inp: CalibrationInput, n: int, *, what: str, timeout: float = 5.0):
    """Yield up to ``n`` consecutive frames (fewer if a file ends first; at least one).

    A generator, so builders stream frames instead of holding N of them.

    Raises
    ------
    CalibrationError
        When the input yields no frame at all, or a live one stalls.
    """
    count = 0
    while count < n:
        try:
            cap = inp.read(timeout)
        except TimeoutError:
            raise CalibrationError(f"{what}: {inp.description}: no frame within {timeout:g} s") from None
        if cap is None:
            break
        count += 1
        yield cap
    if count == 0:
        raise CalibrationError(f"{what}: {inp.description}: no frames could be read")


def collect(inp: CalibrationInput, n: int, *, what: str, timeout: float = 5.0) -> list[Capture]:
    """:func:`iter_captures` as a list."""
    return list(iter_captures(inp, n, what=what, timeout=timeout))
