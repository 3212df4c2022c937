"""The noise histogram's bins by their edges equal the log2 rule's bins (sample_pass)."""

from __future__ import annotations

import numpy as np
from numba import njit

from nirf_overlay.processing._kernels.sample import _bin_by_edges, _noise_bin, noise_bin_edges
from nirf_overlay.processing.normalise import Q_BINS, Q_LO, Q_SCALE


@njit(cache=False)
def _both(qs, q_lo, q_scale, edges, rule, by_edges):
    for i in range(qs.shape[0]):
        rule[i] = _noise_bin(qs[i], q_lo, q_scale, edges.shape[0])
        by_edges[i] = _bin_by_edges(qs[i], q_lo, q_scale, edges)


def _edges(q_lo=Q_LO, q_scale=Q_SCALE, n=Q_BINS):
    e = np.zeros(n, np.float32)
    noise_bin_edges(np.float32(q_lo), np.float32(q_scale), e)
    return e


def test_edges_rise_and_bin_as_the_log2_rule_does():
    e = _edges()
    finite = e[np.isfinite(e)]
    assert e[0] == 0 and np.all(np.diff(finite) > 0)
    # every edge, the float32 on either side of it, and values spread over the whole range
    rng = np.random.default_rng(5)
    near = np.concatenate([np.nextafter(finite[1:], np.float32(0)), finite[1:],
                           np.nextafter(finite[1:], np.float32(np.inf))])
    spread = np.exp2(rng.uniform(-60.0, 60.0, 200_000)).astype(np.float32)
    qs = np.concatenate([near, spread, np.float32([0.0, 1e-45, 1.0, 2.0, 3e38])]).astype(np.float32)
    rule = np.zeros(qs.size, np.int64)
    by_edges = np.zeros(qs.size, np.int64)
    _both(qs, np.float32(Q_LO), np.float32(Q_SCALE), e, rule, by_edges)
    assert np.array_equal(rule, by_edges)
    assert rule.min() == 0 and rule.max() == Q_BINS - 1  # both clipped ends are reached


def test_other_origins_and_scales_bin_alike():
    """The guess stays within a bin of the answer for other histogram layouts too."""
    rng = np.random.default_rng(6)
    qs = np.exp2(rng.uniform(-30.0, 30.0, 50_000)).astype(np.float32)
    for q_lo, q_scale, n in ((-20.0, 2.0, 80), (-33.5, 3.0, 200), (-40.0, 1.0, 64)):
        e = _edges(q_lo, q_scale, n)
        rule = np.zeros(qs.size, np.int64)
        by_edges = np.zeros(qs.size, np.int64)
        _both(qs, np.float32(q_lo), np.float32(q_scale), e, rule, by_edges)
        assert np.array_equal(rule, by_edges), (q_lo, q_scale)
