"""The study: what batch writes per session and for all of them, and the summary row.

``OUT/<session>/metrics.csv``, ``rims.csv``
    the session's stitched rows, through the same
    :class:`~nirf_overlay.export.MetricsSink` as ``process``: cell for cell
    the files ``process`` writes.
``OUT/study_frames.parquet``, ``study_frames.csv``
    every session's frame rows, with a ``session`` column.
``OUT/summary.csv``
    one row per session, columns :data:`SUMMARY_COLUMNS` (:func:`summarise`).
"""

from __future__ import annotations

import os

from ..export import MetricsSink, write_table
from ..processing.result import FRAME_COLUMNS

SUMMARY_COLUMNS = ("session", "frames", "frames_expected", "frames_with_rim", "rims",
                   "median_tbr", "median_rim_thickness_mm", "median_rim_completeness",
                   "plane_fluorescence_frames", "plane_fluorescence_events", "frames_dropped",
                   "chunks_rerun", "error", "nir_signal")


def session_facts(path: str) -> dict:
    """Frame count, frames dropped at capture, frame rate of the session at ``path``.

    Dropped means lost (by the source or the recorder); a frame recorded without
    NIR is not dropped: it is in the tables, its ``nir`` column says so."""
    from ..recording import read_session

    session = read_session(path)
    dropped = 0
    for row in session.frames:
        for key in ("dropped_before", "not_written_before"):
            try:
                dropped += int(float(row.get(key) or 0))
            except ValueError:  # a damaged cell counts as nothing dropped
                pass
    return {"frame_count": session.frame_count, "dropped": dropped, "fps": session.fps}


def unique_names(paths: list[str]) -> list[str]:
    """A folder name per session, ``-2``, ``-3`` ... where two have the same name."""
    names, seen = [], {}
    for p in paths:
        base = os.path.basename(os.path.normpath(p)) or "session"
        n = seen.get(base, 0)
        seen[base] = n + 1
        names.append(base if n == 0 else f"{base}-{n + 1}")
    return names


def write_session(out_dir: str, frames: list) -> None:
    """``metrics.csv`` and ``rims.csv`` of one session from its ``(frame_row, rim_rows)``."""
    os.makedirs(out_dir, exist_ok=True)
    with MetricsSink(out_dir) as sink:
        for frame_row, rim_rows in frames:
            sink.add(frame_row, rim_rows)


def summarise(name: str, frame_rows: list, rim_rows: list, facts: dict, error) -> dict:
    """The session's row of ``summary.csv`` (medians over frames with a rim)."""
    import numpy as np

    def med(key, rows):
        vals = [r[key] for r in rows if r.get(key) is not None]
        return float(np.median(vals)) if vals else None

    with_rim = [r for r in frame_rows if r["rims"]]
    flags = [int(r["plane_fluorescence"] or 0) for r in frame_rows]  # empty without NIR
    onsets = sum(1 for i, f in enumerate(flags) if f and (i == 0 or not flags[i - 1]))
    return {
        "session": name,
        "frames": len(frame_rows),
        "frames_expected": facts.get("frame_count"),
        "frames_with_rim": len(with_rim),
        "rims": len({r["rim_id"] for r in rim_rows}),
        "median_tbr": med("tbr", with_rim),
        "median_rim_thickness_mm": med("rim_thickness_mm", with_rim),
        "median_rim_completeness": med("rim_completeness", with_rim),
        "plane_fluorescence_frames": int(sum(flags)),
        "plane_fluorescence_events": onsets,
        "frames_dropped": facts.get("dropped"),
        "chunks_rerun": facts.get("reruns", 0),
        "error": error or "",
        # "display" if any frame's ratios are of display values (8-bit NIR, no transfer)
        "nir_signal": ("display" if any(r.get("nir_signal") == "display" for r in frame_rows)
                       else "linear" if frame_rows else ""),
    }


def write_study(out_dir: str, study: list, summary: list) -> None:
    """The study tables: every frame row (parquet and CSV) and the summary."""
    import pandas as pd

    columns = ["session", *FRAME_COLUMNS]
    frame = pd.DataFrame(study, columns=columns)
    frame.to_parquet(os.path.join(out_dir, "study_frames.parquet"), index=False)
    write_table(os.path.join(out_dir, "study_frames.csv"), columns, study)
    write_table(os.path.join(out_dir, "summary.csv"), SUMMARY_COLUMNS, summary)
