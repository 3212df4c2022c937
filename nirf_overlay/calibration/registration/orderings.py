"""Which NIR corner is which WL corner, for a plain checkerboard.

The detector may number a checkerboard's corners from either end in each
channel, and every renumbering of one pose's grid is fitted exactly by *some*
homography, so one pose cannot tell.  Several poses can: for each ordering of
the first pose, every later pose takes the ordering the homography fitted so
far predicts best; only the right first choice makes all poses agree on one
map, so the smallest overall RMS wins.  This also registers a channel that is
rotated or mirrored relative to the other.  (ChArUco corners carry ids and
need none of this.)
"""

from __future__ import annotations

import numpy as np

from .homography import apply_homography, fit_exact

__all__ = ["match_orderings"]

#: added to the rotation score of an orientation-reversing ordering: both
#: channels look through the same optics, so a single pose is taken unmirrored
_MIRROR_PENALTY_DEG = 1000.0


def _orderings(board: tuple[int, int]) -> list:
    """Index permutations of a detected grid that are the same board turned or mirrored."""
    cols, rows = board
    idx = np.arange(rows * cols).reshape(rows, cols)
    cands = [idx, idx[::-1, :], idx[:, ::-1], idx[::-1, ::-1]]
    if rows == cols:
        t = idx.T
        cands += [t, t[::-1, :], t[:, ::-1], t[::-1, ::-1]]
    return [c.ravel() for c in cands]


def _rotation_deg(wl: np.ndarray, nir: np.ndarray):
    """(det, rotation in degrees) of the least-squares linear map wl -> nir (centred)."""
    a, *_ = np.linalg.lstsq(wl - wl.mean(axis=0), nir - nir.mean(axis=0), rcond=None)
    a = a.T  # nir_c ~ a @ wl_c
    return float(np.linalg.det(a)), float(np.degrees(np.arctan2(a[1, 0] - a[0, 1], a[0, 0] + a[1, 1])))


def _prior_ordering(wl: np.ndarray, nir: np.ndarray, board) -> np.ndarray:
    """For a single pose: the ordering that makes WL -> NIR orientation-preserving
    with the smallest rotation (both channels look through the same optics)."""
    best, best_score = nir, np.inf
    for perm in _orderings(board):
        det, rot = _rotation_deg(wl, nir[perm])
        score = abs(rot) + (_MIRROR_PENALTY_DEG if det <= 0 else 0.0)
        if score < best_score:
            best, best_score = nir[perm], score
    return best


def _follow(first: np.ndarray, wl_poses: list, nir_poses: list, perms: list):
    """NIR poses reordered after ``first``, each as the map fitted so far predicts; None if a fit fails."""
    chosen = [first]
    for wl, nir in zip(wl_poses[1:], nir_poses[1:]):
        h = fit_exact(np.concatenate(wl_poses[:len(chosen)]), np.concatenate(chosen))
        if h is None:
            return None
        errs = [float(np.mean(np.sum((apply_homography(h, wl) - nir[p]) ** 2, axis=1))) for p in perms]
        chosen.append(nir[perms[int(np.argmin(errs))]])
    return chosen


def match_orderings(wl_poses: list, nir_poses: list, board) -> list:
    """NIR corners of every pose reordered so that nir[k] is the same board corner as wl[k].

    Parameters
    ----------
    wl_poses, nir_poses : lists of (cols * rows, 2) float64, pixels
    board : (cols, rows) inner corners

    Returns
    -------
    list of (cols * rows, 2) float64
        The NIR poses reordered (unchanged when no ordering fits).
    """
    if len(wl_poses) == 1:
        return [_prior_ordering(wl_poses[0], nir_poses[0], board)]
    perms = _orderings(board)
    best, best_rms = None, np.inf
    for perm0 in perms:
        chosen = _follow(nir_poses[0][perm0], wl_poses, nir_poses, perms)
        if chosen is None:
            continue
        src, dst = np.concatenate(wl_poses), np.concatenate(chosen)
        h = fit_exact(src, dst)
        if h is None:
            continue
        rms = float(np.sqrt(np.mean(np.sum((apply_homography(h, src) - dst) ** 2, axis=1))))
        if rms < best_rms:
            best, best_rms = chosen, rms
    return best if best is not None else list(nir_poses)
