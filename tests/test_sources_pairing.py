"""TimestampPairer on synthetic timestamps: jitter, offsets, drops, newest-wins.

The pairer has no clock and no threads, so these tests drive it exactly as
the capture threads and the reader do: frames pushed in arrival order, the
reader taking whatever is newest at chosen moments.
"""

from __future__ import annotations

import heapq

import numpy as np
import pytest

from nirf_overlay.sources.pairing import TimedFrame, TimestampPairer

PERIOD = 1 / 30
TOL = PERIOD / 2


def stream(rng, n, *, offset=0.0, jitter=0.0, drop=0.0, period=PERIOD):
    """(capture_time, frame_id) for n frames; dropped frames never arrive."""
    out = []
    for k in range(n):
        if rng.random() < drop:
            continue
        t = 10.0 + offset + k * period + (rng.normal(0, jitter) if jitter else 0.0)
        out.append((t, k))
    return out


def run(wl, nir, *, pairer, take_every=1, latency=0.002):
    """Feed both streams in arrival order (capture time + latency); take pairs.

    Returns the pairs taken as ``(wl_id, nir_id or None)``.
    """
    events = [(t + latency, 0, t, k) for t, k in wl] + [(t + latency, 1, t, k) for t, k in nir]
    heapq.heapify(events)
    taken, pushes = [], 0
    while events:
        arrival, which, t, k = heapq.heappop(events)
        item = TimedFrame(t, k, k)
        (pairer.push_wl if which == 0 else pairer.push_nir)(item)
        pairer.poll(arrival)  # as the capture threads do after every push
        pushes += 1
        if pushes % take_every == 0:
            pair = pairer.take(arrival)
            if pair is not None:
                taken.append((pair.wl.frame, None if pair.nir is None else pair.nir.frame))
    # let the clock run out so every waiting WL frame is decided
    pair = pairer.take(float("inf"))
    if pair is not None:
        taken.append((pair.wl.frame, None if pair.nir is None else pair.nir.frame))
    return taken


def accounted(pairer, n_wl, n_nir):
    """Every frame pushed is either in a pair, counted, or still waiting."""
    pairs_made = pairer.delivered + pairer.dropped
    assert pairs_made + pairer.unpaired_wl + len(pairer._wl) == n_wl
    assert pairer.paired + pairer.unpaired_nir + len(pairer._nir) == n_nir


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("offset", [-0.006, 0.0, 0.006])
def test_jittered_streams_pair_with_their_true_partner(seed, offset):
    # jitter 1 ms per stream: the true partner is always well inside 16.7 ms
    rng = np.random.default_rng(seed)
    wl = stream(rng, 300, jitter=0.001)
    nir = stream(rng, 300, offset=offset, jitter=0.001)
    pairer = TimestampPairer(TOL, grace=0.003)
    taken = run(wl, nir, pairer=pairer)
    assert len(taken) == 300
    assert all(w == n for w, n in taken), "each WL frame pairs with the NIR frame of its instant"
    assert pairer.dropped == 0 and pairer.unpaired_wl == 0 and pairer.unpaired_nir == 0
    accounted(pairer, 300, 300)


@pytest.mark.parametrize("seed", [3, 4])
def test_dropped_frames_are_counted_never_papered_over(seed):
    rng = np.random.default_rng(seed)
    wl = stream(rng, 400, jitter=0.002, drop=0.1)
    nir = stream(rng, 400, offset=0.004, jitter=0.002, drop=0.15)
    wl_ids, nir_ids = {k for _, k in wl}, {k for _, k in nir}
    pairer = TimestampPairer(TOL, grace=0.003)
    taken = run(wl, nir, pairer=pairer)
    assert all(w == n for w, n in taken if n is not None)
    assert {w for w, n in taken if n is not None} == wl_ids & nir_ids
    # white light never waits for NIR: a WL frame whose NIR never came goes out alone
    assert {w for w, n in taken if n is None} == wl_ids - nir_ids
    assert pairer.wl_alone == len(wl_ids - nir_ids) and pairer.unpaired_wl == 0
    assert pairer.unpaired_nir == len(nir_ids - wl_ids)
    nir_used = [n for _, n in taken if n is not None]
    assert len(nir_used) == len(set(nir_used)), "a NIR frame must never be used twice"
    accounted(pairer, len(wl), len(nir))


def offline_reference(wl, nir, tol):
    """Greedy pairing with all timestamps known in advance (the rule, stated plainly)."""
    nir = sorted(nir)
    last, out = float("-inf"), []
    for t_w, k in sorted(wl):
        cands = [(abs(t_n - t_w), -t_n, j) for t_n, j in nir if t_n > last and abs(t_n - t_w) <= tol]
        if cands:
            d, neg_t, j = min(cands)
            last = -neg_t
            out.append((k, j))
    return out


@pytest.mark.parametrize("seed", [10, 11, 12, 13])
def test_online_pairing_matches_the_offline_rule_under_heavy_jitter_and_drops(seed):
    rng = np.random.default_rng(seed)
    wl = stream(rng, 300, jitter=0.005, drop=0.1)
    nir = stream(rng, 300, offset=float(rng.uniform(-0.01, 0.01)), jitter=0.005, drop=0.1)
    wl.sort(), nir.sort()  # jitter may reorder; a capture thread stamps in order
    pairer = TimestampPairer(TOL, grace=0.003)
    taken = run(wl, nir, pairer=pairer, latency=0.002)
    reference = offline_reference(wl, nir, TOL)
    got = [p for p in taken if p[1] is not None]
    assert set(got) <= set(reference) and len(reference) - len(got) <= pairer.dropped
    ids = [w for w, _ in taken]  # every WL frame goes out (or is replaced by a newer one)
    assert ids == sorted(ids) and len(ids) + pairer.dropped == len(wl) and pairer.unpaired_wl == 0
    accounted(pairer, len(wl), len(nir))


def test_out_of_tolerance_is_unpaired():
    rng = np.random.default_rng(5)
    wl = stream(rng, 50)
    nir = stream(rng, 50, offset=0.012)  # 12 ms and 21 ms away: both beyond 5 ms
    pairer = TimestampPairer(0.005)
    taken = run(wl, nir, pairer=pairer)
    assert taken == [(k, None) for k in range(50)], "out alone, none lost"
    assert pairer.wl_alone == 50 and pairer.unpaired_wl == 0 and pairer.unpaired_nir >= 49
    accounted(pairer, 50, 50)


def test_slow_reader_gets_the_newest_pair_and_the_rest_are_dropped():
    rng = np.random.default_rng(6)
    wl = stream(rng, 120, jitter=0.001)
    nir = stream(rng, 120, offset=0.003, jitter=0.001)
    pairer = TimestampPairer(TOL, grace=0.003)
    taken = run(wl, nir, pairer=pairer, take_every=10)  # a reader at 1/5 of the rate
    assert len(taken) + pairer.dropped == 120
    assert pairer.dropped > 80
    ids = [w for w, _ in taken]
    assert ids == sorted(ids) and ids[-1] == 119, "newest first, never going back"
    assert all(w == n for w, n in taken)


def test_nir_lower_rate_pairs_each_nir_once():
    """NIR at half the WL rate: every other WL frame has a partner; no reuse."""
    rng = np.random.default_rng(7)
    wl = stream(rng, 100)
    nir = [(t, k) for t, k in stream(rng, 100) if k % 2 == 0]
    pairer = TimestampPairer(TOL)
    taken = run(wl, nir, pairer=pairer)
    assert [w for w, n in taken if n is not None] == list(range(0, 100, 2))
    assert [w for w, _ in taken] == list(range(100))
    assert pairer.wl_alone == 50 and pairer.unpaired_wl == 0


def test_waiting_wl_is_decided_by_the_clock_when_no_later_nir_comes():
    pairer = TimestampPairer(0.016, grace=0.002)
    pairer.push_nir(TimedFrame(1.000, "n0"))
    pairer.push_wl(TimedFrame(1.005, "w0"))  # best so far 5 ms away; a nearer NIR may come
    assert pairer.take(1.006) is None
    assert pairer.deadline() == pytest.approx(1.005 + 0.005 + 0.002)
    pair = pairer.take(1.0125)
    assert (pair.wl.frame, pair.nir.frame) == ("w0", "n0")


def test_a_later_nir_closer_in_time_wins():
    pairer = TimestampPairer(0.016)
    pairer.push_nir(TimedFrame(1.000, "n0"))
    pairer.push_wl(TimedFrame(1.008, "w0"))
    pairer.push_nir(TimedFrame(1.010, "n1"))  # 2 ms away beats 8 ms away
    pair = pairer.take(1.0101)
    assert (pair.wl.frame, pair.nir.frame) == ("w0", "n1")
    assert pairer.unpaired_nir == 1  # n0 can never be used any more


def test_nir_lost_hands_out_wl_alone():
    pairer = TimestampPairer(0.016)
    pairer.push_nir(TimedFrame(0.99, "n0"))
    pairer.nir_lost = True
    pairer.clear()
    pairer.push_wl(TimedFrame(1.0, "w0"))
    pair = pairer.take(1.0)
    assert pair.wl.frame == "w0" and pair.nir is None
    assert pairer.unpaired_nir == 1


def test_buffers_are_bounded():
    pairer = TimestampPairer(0.016, maxlen=3)
    for k in range(10):  # NIR stalls: WL piles up
        pairer.push_wl(TimedFrame(1.0 + k * PERIOD, k))
    assert len(pairer._wl) == 3 and pairer.unpaired_wl == 7
    for k in range(10):
        pairer.push_nir(TimedFrame(5.0 + k * PERIOD, k))
    assert len(pairer._nir) == 3 and pairer.unpaired_nir == 7


def test_tolerance_must_be_positive():
    with pytest.raises(ValueError):
        TimestampPairer(0.0)


def test_wl_alone_waits_at_most_the_tolerance_then_stale_then_lost():
    """NIR stops: each WL frame goes out alone once the tolerance (+ grace) has passed,
    "stale" while the newest NIR frame is recent, "lost" after lost_after."""
    pairer = TimestampPairer(TOL, grace=0.002, lost_after=0.11)
    pairer.push_nir(TimedFrame(1.0, "n0"))
    pairer.push_wl(TimedFrame(1.0, "w0"))
    assert pairer.take(1.0).status == "present"
    statuses = []
    for k in range(1, 10):  # NIR stopped after n0
        t = 1.0 + k * PERIOD
        pairer.push_wl(TimedFrame(t, f"w{k}"))
        assert pairer.take(t + TOL) is None, "within the tolerance a NIR frame may still come"
        pair = pairer.take(t + TOL + 0.0021)
        assert pair.wl.frame == f"w{k}" and pair.nir is None
        statuses.append(pair.status)
    assert statuses == ["stale"] * 3 + ["lost"] * 6  # 0.11 s: 3 periods
    pairer.push_nir(TimedFrame(1.0 + 10 * PERIOD, "n10"))
    pairer.push_wl(TimedFrame(1.0 + 10 * PERIOD, "w10"))
    assert pairer.take(2.0).status == "present"
    assert pairer.wl_alone == 9 and pairer.unpaired_wl == 0
