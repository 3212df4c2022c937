"""Joining one session's chunk results into the rows a sequential run writes.

Rim ids, which a tracker numbers in order of first appearance, are
renumbered chunk by chunk: the frames a chunk shares with the previous one
(its warm-up) tell which of its ids are which already-known rims, and rims
new in the chunk continue the count.
"""

from __future__ import annotations

from typing import Callable, Optional

from .chunks import Chunk, ChunkResult


def verify(results: list[ChunkResult], rerun: Callable) -> tuple[list, int]:
    """Make sure every chunk started from the state a sequential run has there.

    A chunk is exact when the previous (exact) chunk ends in the state this
    chunk reached at the end of its warm-up (same
    :meth:`~nirf_overlay.processing.pipeline.Pipeline.state_digest`).  A chunk whose warm-up was too short for
    that is run again (``rerun(chunk) -> ChunkResult``) with twice the
    warm-up, back to the start of the recording if need be, which is exact
    by construction.  Returns the exact results and the number of re-runs.
    """
    results = sorted(results, key=lambda r: r.start)
    reruns = 0
    for k in range(1, len(results)):
        prev, res = results[k - 1], results[k]
        while not (prev.error or res.error) and res.warm_start > 0 and res.warm_digest != prev.end_digest:
            warm = res.start - res.warm_start
            ch = Chunk(res.session, res.start, res.stop, max(0, res.start - 2 * max(warm, 1)))
            res = rerun(ch)
            reruns += 1
        results[k] = res
    return results, reruns


def _centroids(rim_rows) -> dict:
    return {r["rim_id"]: (r["centroid_x"], r["centroid_y"]) for r in rim_rows}


def stitch(results: list[ChunkResult]) -> tuple[list, Optional[str]]:
    """Join one session's chunk results into sequential frames.

    Returns ``(frames, error)``: ``frames`` is one ``(frame_row, rim_rows)``
    per reported frame, in order, rim ids renumbered as a sequential run
    numbers them (see the module docstring); ``error`` the first chunk's
    error, or None.
    """
    results = sorted(results, key=lambda r: r.start)
    errors = [r.error for r in results if r.error]
    frames = []
    previous: dict = {}  # frame index -> {global id: centroid} of reported frames
    next_id = 1
    for res in results:
        if res.error:
            break
        mapping: dict = {}
        for index, frow, rrows in res.frames:
            if index < res.start:
                # warm-up frame: the previous chunk reported it; pair ids by position
                known = previous.get(index, {})
                for rid, c in _centroids(rrows).items():
                    match = [g for g, kc in known.items()
                             if abs(kc[0] - c[0]) < 1e-6 and abs(kc[1] - c[1]) < 1e-6]
                    if match:
                        mapping[rid] = match[0]
                continue
            rows = []
            for row in rrows:
                rid = row["rim_id"]
                if rid not in mapping:
                    mapping[rid] = next_id
                    next_id += 1
                rows.append(dict(row, rim_id=mapping[rid]))
            frames.append((frow, rows))
            previous[index] = _centroids(rows)
        next_id = max([next_id] + [g + 1 for g in mapping.values()])
    return frames, (errors[0] if errors else None)
