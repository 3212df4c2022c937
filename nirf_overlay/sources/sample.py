"""The bundled sample recording: what a command reads when it is given no source."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

__all__ = ["SAMPLE_DIR", "SAMPLE_WL", "SAMPLE_NIR", "SAMPLE_PROFILE", "as_sample"]

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_DIR = ROOT / "sample_videos"
SAMPLE_WL = SAMPLE_DIR / "sample_wl.mp4"  # H.264, BGR 8-bit
SAMPLE_NIR = SAMPLE_DIR / "sample_nir.mkv"  # FFV1 gray16le, 12-bit counts
SAMPLE_PROFILE = ROOT / "calibration" / "sample" / "profile.json"
#: per-frame gain and exposure (the sample has an auto-gain step) for the pipeline
SAMPLE_FRAMES_CSV = SAMPLE_DIR / "sample_truth_frames.csv"


def as_sample(spec):
    """``spec`` (which names no input) turned into the bundled sample.

    Only how to read is kept from ``spec`` (``realtime``, ``loop``, and
    ``nir_bits`` when given); the files, the profile that comes with them
    and their per-frame metadata are the sample's.
    """
    # The sample's NIR is 12-bit counts in a 16-bit container; the data cannot
    # say so themselves (a dark 16-bit frame looks the same), so say it here.
    options = {"frame_meta": str(SAMPLE_FRAMES_CSV)} if SAMPLE_FRAMES_CSV.is_file() else {}
    return replace(spec, wl=str(SAMPLE_WL), nir=str(SAMPLE_NIR), nir_bits=spec.nir_bits or 12,
                   is_default_sample=True, options=options,
                   profile=str(SAMPLE_PROFILE) if SAMPLE_PROFILE.is_file() else None)
