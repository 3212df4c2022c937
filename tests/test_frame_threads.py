"""Lesions refined side by side (processing.frame_threads): same results, same order."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from nirf_overlay.phantom import Phantom, PhantomParams
from nirf_overlay.processing.frame_threads import ordered_map, usable_cores
from nirf_overlay.processing.pipeline import Pipeline
from nirf_overlay.settings import Settings


def test_ordered_map_runs_items_side_by_side_and_keeps_their_order():
    # two calls must be inside fn at once to pass the barrier (on one thread it
    # times out); the first item finishes last, its result still comes first
    gate = threading.Barrier(2, timeout=10)
    threads = set()

    def fn(x):
        threads.add(threading.current_thread().name)
        if x < 2:
            gate.wait()
        time.sleep(0.05 if x == 0 else 0.0)
        return x * x

    assert ordered_map(fn, list(range(6)), workers=2) == [0, 1, 4, 9, 16, 25]
    assert len(threads) == 2 and threading.current_thread().name in threads


def test_ordered_map_on_one_worker_stays_on_the_calling_thread():
    seen = []
    out = ordered_map(lambda x: seen.append(threading.current_thread()) or x + 1, [1, 2, 3], 1)
    assert out == [2, 3, 4] and set(seen) == {threading.current_thread()}


def test_ordered_map_raises_the_first_items_error_after_all_calls_end():
    done = []

    def fn(x):
        if x in (1, 3):
            raise ValueError(f"item {x}")
        time.sleep(0.01)
        done.append(x)
        return x

    with pytest.raises(ValueError, match="item 1"):
        ordered_map(fn, [0, 1, 2, 3, 4], workers=2)
    assert sorted(done) == [0, 2, 4]


def test_usable_cores_counts_this_processes_cores():
    assert 1 <= usable_cores() <= (os.cpu_count() or 1)


@pytest.mark.parametrize("reuse,dark", [(False, True), (True, True), (False, False)])
def test_pipeline_on_two_workers_gives_what_one_gives_to_the_bit(reuse, dark):
    # three lesions and a transection plane: rims (order, ids, every number,
    # outlines), masks, plane check and composite as on one thread; without
    # a calibration (no dark frame) the black level estimated as on one thread
    ph = Phantom(PhantomParams(seed=5, size=(640, 360), n_lesions=3, gain_step_s=None))
    settings = Settings()
    settings.segment.reuse_rims = reuse
    settings.plane.polygon = [[100, 60], [400, 60], [400, 300], [100, 300]]
    cal = (lambda: ph.calibration()) if dark else (lambda: None)
    one, two = Pipeline(settings, cal()), Pipeline(settings, cal())
    one.analysis_workers, two.analysis_workers = 1, 2
    lesions = 0
    for i in range(8):
        pair = ph.frame(i)
        a, b = one.process(pair), two.process(pair)
        lesions = max(lesions, len(a.rims))
        assert [repr(r) for r in a.rims] == [repr(r) for r in b.rims]
        assert all(np.array_equal(r.contour, s.contour) for r, s in zip(a.rims, b.rims))
        assert np.array_equal(a.rim_mask, b.rim_mask)
        assert np.array_equal(a.fluorescence_mask, b.fluorescence_mask)
        assert repr(a.plane) == repr(b.plane)
        assert np.array_equal(a.composite, b.composite)
    assert lesions >= 2  # the frames had lesions to refine side by side
    assert one.state_digest() == two.state_digest()
    if not dark:
        assert one.black_level is not None and two.black_level is not None
        assert one.black_level.value == two.black_level.value


def test_ordered_map_called_on_a_pool_thread_runs_there_instead_of_waiting_for_itself():
    both = threading.Barrier(2, timeout=10)  # the two outer items run at once, one on the pool

    def outer(_):
        both.wait()
        return threading.current_thread().name, ordered_map(
            lambda y: threading.current_thread().name, [1, 2, 3], 2)

    runs = ordered_map(outer, [0, 1], workers=2)
    on_pool = [inner for name, inner in runs if name.startswith("nirf-frame")]
    # (without the rule: never returns, its helper queued behind itself)
    assert len(on_pool) == 1 and len(set(on_pool[0])) == 1  # all three on that pool thread
