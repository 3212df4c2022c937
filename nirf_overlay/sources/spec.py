"""What the user asked to read, independent of how it is read."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Optional

from ..privacy import redact
from .registry import kind_of
from .sample import as_sample

__all__ = ["SourceSpec", "default_sample"]


@dataclass
class SourceSpec:
    """What the user asked to read; :func:`~nirf_overlay.sources.open_source` opens it.

    At most one input is named: ``session``, ``wl`` with ``nir``, ``combined``
    or ``phantom``; none means the bundled sample.  Which kind of source that
    is, and how it is described, the registry (:mod:`.registry`) decides.
    """

    session: Optional[str] = None  # recorded-session directory (positional)
    wl: Optional[str] = None
    nir: Optional[str] = None
    combined: Optional[str] = None
    layout: Optional[str] = None  # side-by-side|top-bottom|custom; None: the calibration's, else side-by-side
    nir_half: Optional[str] = None  # left|right|top|bottom; default right/bottom
    phantom: bool = False
    seed: int = 0
    size: Optional[tuple[int, int]] = None  # (W, H)
    fps: Optional[float] = None
    nir_bits: Optional[int] = None  # override the bit depth a stream reports
    realtime: bool = False  # pace files at their native rate
    loop: bool = False
    pair_tolerance: Optional[float] = None  # seconds; default half a period
    is_default_sample: bool = False
    profile: Optional[str] = None  # a calibration profile that comes with this input
    options: dict = field(default_factory=dict)
    wl_rect: Optional[tuple[int, int, int, int]] = None  # --layout custom: x, y, w, h
    nir_rect: Optional[tuple[int, int, int, int]] = None
    # write whole paths into sessions, snapshots and stats (default: file names only;
    # a URL's password is never written: nirf_overlay.privacy)
    keep_paths: bool = False

    def describe(self) -> str:
        """One line naming the input (``phantom(seed=3)``, ``WL a.mp4 + NIR b.mkv`` ...).

        This is what sessions, snapshots, stats, logs and the status bar show: a
        URL's password redacted, files by name unless ``keep_paths``
        (:mod:`nirf_overlay.privacy`).
        """
        return redact(kind_of(self).describe(self))

    def to_dict(self) -> dict:
        """The spec as JSON-ready values (``size`` a list)."""
        data = asdict(self)
        for key in ("size", "wl_rect", "nir_rect"):
            if data[key] is not None:
                data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "SourceSpec":
        """The inverse of :meth:`to_dict`; keys that are not fields are ignored."""
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        for key in ("size", "wl_rect", "nir_rect"):
            if kwargs.get(key) is not None:
                kwargs[key] = tuple(int(v) for v in kwargs[key])
        return cls(**kwargs)


def default_sample() -> SourceSpec:
    """The bundled sample recording, used when a command is given no source."""
    return as_sample(SourceSpec())
