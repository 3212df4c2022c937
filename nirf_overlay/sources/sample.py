"""The bundled sample recording: what a command reads when it is given no source."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

__all__ = ["SAMPLE_DIR", "SAMPLE_WL", "SAMPLE_NIR", "SAMPLE_PROFILE", "as_sample",
           "sample_available", "sample_missing"]

#: where the sample is looked for, in order: the source tree (a clone, an editable
#: install) and the copy a wheel or ``pip install .`` puts in the package (setup.py)
SEARCH_ROOTS = (Path(__file__).resolve().parents[2], Path(__file__).resolve().parents[1] / "bundled")


def _root() -> Path:
    for root in SEARCH_ROOTS:
        if (root / "sample_videos" / "sample_wl.mp4").is_file():
            return root
    return SEARCH_ROOTS[0]  # none: paths (and messages) name where it belongs


ROOT = _root()
SAMPLE_DIR = ROOT / "sample_videos"
SAMPLE_WL = SAMPLE_DIR / "sample_wl.mp4"  # H.264, BGR 8-bit
SAMPLE_NIR = SAMPLE_DIR / "sample_nir.mkv"  # FFV1 gray16le, 12-bit counts
SAMPLE_PROFILE = ROOT / "calibration" / "sample" / "profile.json"
#: per-frame gain and exposure (the sample has an auto-gain step) for the pipeline
SAMPLE_FRAMES_CSV = SAMPLE_DIR / "sample_truth_frames.csv"


def sample_available() -> bool:
    """The bundled sample's two videos are installed (a wheel built without them has none)."""
    return SAMPLE_WL.is_file() and SAMPLE_NIR.is_file()


def sample_missing() -> str:
    """The one-line refusal for a command given no source when there is no sample."""
    looked = " and ".join(str(r / "sample_videos") for r in SEARCH_ROOTS)
    return (f"bundled sample: not installed (looked in {looked}); name a source "
            "(--wl X --nir Y, a SESSION_DIR, --combined X, --phantom) or install nirf-overlay "
            "from a source tree that has sample_videos/")


def as_sample(spec):
    """``spec`` (which names no input) turned into the bundled sample.

    Only how to read is kept from ``spec`` (``realtime``, ``loop``, and
    ``nir_bits`` when given); the files, the profile that comes with them
    and their per-frame metadata are the sample's.
    """
    if not sample_available():
        from ..errors import SourceError

        raise SourceError(sample_missing())
    # The sample's NIR is 12-bit counts in a 16-bit container; the data cannot
    # say so themselves (a dark 16-bit frame looks the same), so say it here.
    options = {"frame_meta": str(SAMPLE_FRAMES_CSV)} if SAMPLE_FRAMES_CSV.is_file() else {}
    return replace(spec, wl=str(SAMPLE_WL), nir=str(SAMPLE_NIR), nir_bits=spec.nir_bits or 12,
                   is_default_sample=True, options=options,
                   profile=str(SAMPLE_PROFILE) if SAMPLE_PROFILE.is_file() else None)
