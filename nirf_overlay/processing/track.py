"""Rim tracking across frames: stable ids by nearest-centroid matching."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .rules import RIM_RULES


@dataclass
class Track:
    rim_id: int
    centroid: tuple[float, float]
    area_px: float
    missed: int = 0
    age: int = 0
    history: list = field(default_factory=list)


class RimTracker:
    """Assigns stable ids to rims by greedy nearest-centroid matching.

    A track survives ``max_missed`` frames without a match (a rim hidden for
    a moment by an instrument gets its old id back).  Two rims never share a
    track; a match must lie within ``max_shift_px`` (WL pixels).
    """

    def __init__(self, max_shift_px: float, max_missed: int = RIM_RULES.track_max_missed):
        self.max_shift_px = float(max_shift_px)
        self.max_missed = int(max_missed)
        self.tracks: list[Track] = []
        self._next_id = 1

    def reset(self) -> None:
        self.tracks = []
        self._next_id = 1

    def assign(self, centroids: list[tuple[float, float]], areas: list[float]) -> list[int]:
        """Return one id per centroid (WL pixels), updating the tracks."""
        n = len(centroids)
        ids = [0] * n
        pairs = []
        for ti, t in enumerate(self.tracks):
            for ci, c in enumerate(centroids):
                d = float(np.hypot(c[0] - t.centroid[0], c[1] - t.centroid[1]))
                # allow more shift for a bigger lesion (its centroid wobbles more)
                lim = self.max_shift_px + RIM_RULES.track_shift_per_sqrt_area * np.sqrt(max(t.area_px, 0.0))
                if d <= lim:
                    pairs.append((d, ti, ci))
        pairs.sort()
        used_t, used_c = set(), set()
        for d, ti, ci in pairs:
            if ti in used_t or ci in used_c:
                continue
            used_t.add(ti)
            used_c.add(ci)
            t = self.tracks[ti]
            t.centroid = centroids[ci]
            t.area_px = areas[ci]
            t.missed = 0
            t.age += 1
            ids[ci] = t.rim_id
        for ti, t in enumerate(self.tracks):
            if ti not in used_t:
                t.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for ci in range(n):
            if ci not in used_c:
                t = Track(self._next_id, centroids[ci], areas[ci])
                self._next_id += 1
                self.tracks.append(t)
                ids[ci] = t.rim_id
        return ids
