"""Frame sources: every input behind one interface, chosen by one set of options.

``open_source(spec)`` picks the implementation lazily, so a missing backend
fails only when it is chosen.  ``add_source_arguments`` gives every command
that reads video the same options (``--wl/--nir``, ``--combined``,
``--phantom``, a session directory, ...).
"""

from __future__ import annotations

import argparse
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
    "add_source_arguments",
    "spec_from_args",
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
    spec = SourceSpec(wl=str(SAMPLE_WL), nir=str(SAMPLE_NIR), nir_bits=12, is_default_sample=True)
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
    is_default_sample: bool = False  # commands then use calibration/sample/profile.json
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
    if not spec.session:
        sample = default_sample()
        sample.realtime, sample.loop = spec.realtime, spec.loop
        return open_source(sample)
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


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = text.lower().split("x")
        w, h = int(w), int(h)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r}: expected WxH, e.g. 1920x1080")
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise argparse.ArgumentTypeError(f"size {text!r}: each side must be 16..8192 pixels")
    return w, h


def add_source_arguments(parser: argparse.ArgumentParser, *, positional: bool = True) -> None:
    """Add the source options every command that reads video shares."""
    g = parser.add_argument_group("source (one of; default: the bundled sample)")
    if positional:
        g.add_argument("source", nargs="?", help="recorded session directory")
    g.add_argument("--wl", metavar="X", help="white-light stream: file, image pattern, device, URL")
    g.add_argument("--nir", metavar="Y", help="NIR stream: file, image pattern, device, URL")
    g.add_argument("--combined", metavar="X", help="one stream carrying both views")
    g.add_argument("--layout", choices=("side-by-side", "top-bottom"), default="side-by-side")
    g.add_argument(
        "--nir-half", choices=("left", "right", "top", "bottom"),
        help="which half of --combined is NIR (default: right or bottom)",
    )
    g.add_argument("--nir-bits", type=int, choices=range(8, 17), metavar="{8..16}",
                   help="significant NIR bits if the stream does not say (default: from dtype)")
    g.add_argument("--phantom", action="store_true", help="the synthetic phantom procedure")
    g.add_argument("--seed", type=int, default=0, help="phantom seed")
    g.add_argument("--size", type=_size, help="phantom size WxH (default 1280x720)")
    g.add_argument("--fps", type=float, help="phantom or image-sequence frame rate (default 30)")
    g.add_argument("--realtime", action="store_true", help="pace files at their native frame rate")
    g.add_argument("--loop", action="store_true", help="loop files and sessions")
    g.add_argument("--pair-tolerance", type=float, metavar="S",
                   help="live --wl/--nir: largest WL-NIR capture-time difference to pair, "
                        "seconds (default: half a frame period)")


def spec_from_args(args: argparse.Namespace, **overrides) -> SourceSpec:
    spec = SourceSpec(
        session=getattr(args, "source", None),
        wl=args.wl,
        nir=args.nir,
        combined=args.combined,
        layout=args.layout,
        nir_half=args.nir_half,
        nir_bits=args.nir_bits,
        phantom=args.phantom,
        seed=args.seed,
        size=args.size,
        fps=args.fps,
        realtime=args.realtime,
        loop=args.loop,
        pair_tolerance=getattr(args, "pair_tolerance", None),
    )
    for k, v in overrides.items():
        setattr(spec, k, v)
    return spec
