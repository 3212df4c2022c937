"""The NIR transfer curve: display-encoded values back to relative linear signal.

A laparoscopy tower encodes its NIR view for the eye (a gamma- or log-like
curve), so the 8-bit values a frame grabber records are not proportional to
the fluorescence.  A ratio (TBR), a threshold relative to the background or a
half-maximum taken on them is a ratio of *display values*.  The transfer
undoes the curve at the pipeline's entry, before anything is normalised:

``linear``
    the values are signal already (raw camera counts; nothing is done).
``gamma:G``
    display = signal ** (1 / G); signal = display ** G (G in 0.1..10).
``srgb``
    the sRGB (IEC 61966-2-1) curve, a gamma of about 2.2 with a linear toe.
``lut:FILE.csv``
    a measured curve: rows ``display,linear``, display as a fraction of full
    scale (0..1, strictly increasing), linear the relative signal at it (not
    decreasing, >= 0); an optional header row.  Values between rows are
    interpolated linearly; outside them the end rows hold.

This module defines the curves (a calibration of the display's encoding);
:mod:`nirf_overlay.processing.transfer` applies one at the pipeline's entry.
It is applied as one table per NIR bit depth (``2**nir_bits`` entries, built
once), indexed by the raw values in one vectorised ``take``.  The result is
relative linear signal in ``uint16`` at full 16-bit scale (display full scale
-> 65535), which is the NIR the normalise stage already accepts: a saturated
display pixel stays saturated, and the 8 display bits are spread over 16 so
the dark end keeps its steps.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..errors import CalibrationError

__all__ = ["Transfer", "TransferError", "parse_transfer", "write_lut", "OUT_BITS"]

#: bit depth of the NIR a transfer hands on (full 16-bit scale)
OUT_BITS = 16
#: gammas accepted: beyond them the number is not a display gamma (a typo, another unit)
GAMMA_RANGE = (0.1, 10.0)
#: rows a LUT file must have at least, and at most (a curve, not an image)
_LUT_ROWS = (2, 65536)
#: what a spec may be, in the words every error ends with
EXPECTED = "expected linear, gamma:G (e.g. gamma:2.2), srgb or lut:FILE.csv"


class TransferError(CalibrationError):
    """A transfer spec or LUT file that cannot be used (one line)."""


@dataclass(frozen=True)
class Transfer:
    """A parsed transfer curve; :meth:`table` is what the pipeline applies."""

    kind: str  # linear | gamma | srgb | lut
    gamma: Optional[float] = None
    lut_path: Optional[str] = None
    points: tuple = ()  # lut: ((display...), (linear...))
    _tables: dict = field(default_factory=dict, compare=False, repr=False, hash=False)

    @property
    def linear(self) -> bool:
        return self.kind == "linear"

    @property
    def spec(self) -> str:
        """The spec in the words it was given (``gamma:2.2``, ``lut:/abs/curve.csv``)."""
        if self.kind == "gamma":
            return f"gamma:{self.gamma:g}"
        if self.kind == "lut":
            return f"lut:{self.lut_path}"
        return self.kind

    def decode(self, display: np.ndarray) -> np.ndarray:
        """Relative linear signal (0..1 at full scale) of display values in 0..1."""
        v = np.clip(np.asarray(display, dtype=np.float64), 0.0, 1.0)
        if self.kind == "linear":
            return v
        if self.kind == "gamma":
            return v ** self.gamma
        if self.kind == "srgb":
            return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
        xs, ys = self.points
        return np.interp(v, xs, ys)

    def encode(self, signal: np.ndarray) -> np.ndarray:
        """Display values (0..1) of relative linear signal in 0..1: the inverse of :meth:`decode`."""
        s = np.clip(np.asarray(signal, dtype=np.float64), 0.0, 1.0)
        if self.kind == "linear":
            return s
        if self.kind == "gamma":
            return s ** (1.0 / self.gamma)
        if self.kind == "srgb":
            return np.where(s <= 0.0031308, s * 12.92, 1.055 * s ** (1 / 2.4) - 0.055)
        xs, ys = self.points
        return np.interp(s, ys, xs)

    def table(self, nir_bits: int) -> np.ndarray:
        """``(2**nir_bits,)`` uint16: raw value -> linear signal at 16-bit scale (cached)."""
        t = self._tables.get(nir_bits)
        if t is None:
            full = (1 << int(nir_bits)) - 1
            lin = self.decode(np.arange(full + 1, dtype=np.float64) / full)
            t = np.clip(np.rint(lin * ((1 << OUT_BITS) - 1)), 0, (1 << OUT_BITS) - 1)
            t = t.astype(np.uint16)
            t.setflags(write=False)
            self._tables[nir_bits] = t
        return t

    def apply(self, nir: np.ndarray, nir_bits: int) -> tuple[np.ndarray, int]:
        """``(linear NIR uint16, its bit depth)``; a ``linear`` transfer returns its input."""
        if self.linear:
            return nir, nir_bits
        return np.take(self.table(nir_bits), nir, mode="clip"), OUT_BITS


def parse_transfer(text, *, base: Optional[str] = None, what: str = "nir_transfer") -> Transfer:
    """Parse a transfer spec; ``base`` is the directory a relative LUT path is in.

    Raises
    ------
    TransferError
        One line naming ``what``, the problem and what is expected.
    """
    if not isinstance(text, str) or not text.strip():
        raise TransferError(f"{what}: {text!r} is not a transfer; {EXPECTED}")
    s = text.strip()
    kind, _, arg = s.partition(":")
    kind = kind.lower()
    if kind in ("linear", "srgb") and not arg:
        return Transfer(kind)
    if kind == "gamma":
        try:
            g = float(arg)
        except ValueError:
            raise TransferError(f"{what}: {s!r}: the gamma must be a number; {EXPECTED}") from None
        if not (math.isfinite(g) and GAMMA_RANGE[0] <= g <= GAMMA_RANGE[1]):
            raise TransferError(f"{what}: {s!r}: gamma {g:g} is outside "
                                f"{GAMMA_RANGE[0]:g}..{GAMMA_RANGE[1]:g} (displays use about 2.2)")
        return Transfer("gamma", gamma=g)
    if kind == "lut" and arg:
        path = arg if base is None or os.path.isabs(arg) else os.path.join(base, arg)
        return Transfer("lut", lut_path=os.path.abspath(path), points=_read_lut(path, what))
    raise TransferError(f"{what}: {s!r} is not a transfer; {EXPECTED}")


def read_number_rows(path: str, columns: int, expected: str, bad, missing: str) -> list:
    """The rows of a small CSV of numbers, each a tuple of ``columns`` floats; an optional
    header row is skipped.  ``bad(problem)`` makes the one-line error (``missing`` when
    there is no file, ``expected`` names the columns of a bad row)."""
    if not os.path.isfile(path):
        raise bad(missing)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise bad(f"cannot be read as CSV ({e.__class__.__name__})") from None
    values = []
    for n, row in enumerate(rows, 1):
        try:
            if len(row) != columns:
                raise ValueError
            values.append(tuple(float(c) for c in row))
        except ValueError:
            if n == 1 and values == []:
                continue  # a header row
            raise bad(f"row {n}: expected {expected}") from None
    return values


def _read_lut(path: str, what: str) -> tuple:
    def bad(problem):
        return TransferError(f"{what}: {path}: {problem}")

    values = read_number_rows(path, 2, "two numbers, display,linear", bad, "no such LUT file")
    if not (_LUT_ROWS[0] <= len(values) <= _LUT_ROWS[1]):
        raise bad(f"{len(values)} rows; a curve needs {_LUT_ROWS[0]}..{_LUT_ROWS[1]} rows display,linear")
    xs, ys = (np.array(c, dtype=np.float64) for c in zip(*values))
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
        raise bad("values must be finite numbers")
    if xs.min() < 0 or xs.max() > 1:
        raise bad("display values must be fractions of full scale, 0..1")
    if np.any(np.diff(xs) <= 0):
        raise bad("display values must be strictly increasing")
    if ys.min() < 0 or np.any(np.diff(ys) < 0) or ys.max() <= 0:
        raise bad("linear values must be >= 0, not decreasing, and not all 0")
    ys = ys / ys.max()  # relative signal: full scale 1
    return tuple(xs), tuple(ys)


def write_lut(path: str, rows) -> None:
    """Write ``(display, linear)`` rows as the ``lut:FILE.csv`` :func:`parse_transfer` reads
    (header ``display,linear``; display a fraction of full scale)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("display,linear\n")
        for d, v in rows:
            f.write(f"{d:.8g},{v:.8g}\n")
