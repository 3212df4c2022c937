"""Frame sources: every input behind one interface, chosen by one set of options.

``open_source(spec)`` picks the implementation lazily, so a missing backend
fails only when it is chosen.  The command-line options that fill a
:class:`SourceSpec` live in :mod:`nirf_overlay.cli.source_args`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import SourceError
from .base import FrameSource

__all__ = [
    "FrameSource",
    "SourceSpec",
    "open_source",
    "default_sample",
]

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_DIR = ROOT / "sample_videos"
SAMPLE_WL = SAMPLE_DIR / "sample_wl.mp4"  # H.264, BGR 8-bit
SAMPLE_NIR = SAMPLE_DIR / "sample_nir.mkv"  # FFV1 gray16le, 12-bit counts
SAMPLE_PROFILE = ROOT / "calibration" / "sample" / "profile.json"


def default_sample() -> "SourceSpec":
    """The bundled sample recording, used when a command is given no source."""
    # The sample's NIR is 12-bit counts in a 16-bit container; the data cannot
    # say so themselves (a dark 16-bit frame looks the same), so say it here.
    spec = SourceSpec(wl=str(SAMPLE_WL), nir=str(SAMPLE_NIR), nir_bits=12, is_default_sample=True,
                      profile=str(SAMPLE_PROFILE) if SAMPLE_PROFILE.is_file() else None)
    # per-frame gain/exposure (the sample has an auto-gain step) for the pipeline
    frames_csv = SAMPLE_DIR / "sample_truth_frames.csv"
    if frames_csv.is_file():
        spec.options["frame_meta"] = str(frames_csv)
    return spec


@dataclass
class SourceSpec:
    """What the user asked to read, independent of how it is read."""

    session: Optional[str] = None  # recorded-session directory (positional)
    wl: Optional[str] = None
    nir: Optional[str] = None
    combined: Optional[str] = None
    layout: str = "side-by-side"  # or top-bottom
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

    def describe(self) -> str:
        if self.phantom:
            return f"phantom(seed={self.seed})"
        if self.combined:
            return f"combined {self.combined}"
        if self.wl or self.nir:
            return f"WL {self.wl} + NIR {self.nir}"
        return str(self.session)


def _is_session_dir(path: str) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "session.json"))


def open_source(spec: SourceSpec) -> FrameSource:
    """Open the source ``spec`` names; raise :class:`SourceError` if it cannot."""
    if not (spec.session or spec.wl or spec.nir or spec.combined or spec.phantom):
        sample = default_sample()
        sample.realtime, sample.loop, sample.nir_bits = spec.realtime, spec.loop, (
            spec.nir_bits or sample.nir_bits)
        spec = sample
    source = _open(spec)
    source.profile = spec.profile
    return source


def _open(spec: SourceSpec) -> FrameSource:
    chosen = sum(bool(x) for x in (spec.session, spec.combined, spec.phantom)) + bool(
        spec.wl or spec.nir
    )
    if chosen > 1:
        raise SourceError(
            "source: give only one of a session directory, --wl/--nir, --combined or --phantom"
        )
    if spec.phantom:
        from .phantom_source import PhantomSource

        return PhantomSource.from_spec(spec)
    if spec.combined:
        from .combined import CombinedSource

        return CombinedSource.from_spec(spec)
    if spec.wl or spec.nir:
        if not (spec.wl and spec.nir):
            missing = "--nir" if spec.wl else "--wl"
            raise SourceError(f"{missing}: missing (--wl and --nir go together)")
        from .video import open_pair

        return open_pair(spec)
    path = spec.session
    if not os.path.exists(path):
        raise SourceError(f"{path}: no such file or directory")
    if _is_session_dir(path):
        from ..recording.session import SessionSource

        return SessionSource.from_spec(spec, path)
    if os.path.isdir(path):
        raise SourceError(f"{path}: not a recorded session (no session.json)")
    raise SourceError(
        f"{path}: a single file is not a source; use --combined FILE for a dual-view "
        "stream or --wl FILE --nir FILE for two streams"
    )
