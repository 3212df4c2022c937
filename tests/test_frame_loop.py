"""The one frame loop (``engine.run_frames``) and its span, as process, batch, bench, evaluate run it.

Real phantom frames through the real Pipeline; the seekable and live sources
are the ``controlled_source`` fixture, which counts its reads.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from nirf_overlay.engine import Listener, RunState, Span, run_frames
from nirf_overlay.errors import NirfError
from nirf_overlay.processing.pipeline import Pipeline
from nirf_overlay.settings import Settings


class Collector(Listener):
    def __init__(self):
        self.states, self.pairs, self.frames = [], [], []

    def on_state(self, state):
        self.states.append(state)

    def on_pair(self, pair):
        self.pairs.append(pair.index)

    def on_result(self, frame):
        self.frames.append(frame)


@pytest.fixture
def pipeline(phantom):
    return Pipeline(Settings(), phantom.calibration())


def test_listeners_hear_every_pair_and_result_in_order(frames, pipeline):
    seen = Collector()
    assert run_frames(frames, pipeline, [seen]) == len(frames)
    assert seen.states == [RunState.RUNNING, RunState.ENDED, RunState.STOPPED]
    assert seen.pairs == [p.index for p in frames]
    assert [f.seq for f in seen.frames] == list(range(1, len(frames) + 1))
    assert [f.result.index for f in seen.frames] == seen.pairs
    assert all(f.process_ms > 0 and f.result_b is None for f in seen.frames)
    assert [f.result.time_s for f in seen.frames] == [p.wl_time for p in frames]


def test_a_failing_listener_ends_the_run_and_stopped_is_still_told(frames, pipeline):
    class Full(Collector):
        def on_result(self, frame):
            super().on_result(frame)
            if len(self.frames) == 2:
                raise OSError("disk full")

    seen = Full()
    with pytest.raises(OSError, match="disk full"):
        run_frames(frames, pipeline, [seen])
    assert len(seen.frames) == 2
    assert seen.states == [RunState.RUNNING, RunState.STOPPED]


def test_frame_span_seeks_and_decodes_nothing_beyond_its_end(frames, pipeline, controlled_source):
    src = controlled_source(live=False)
    seen = Collector()
    run_frames(src, pipeline, [seen], span=Span(first=3, stop=6))
    assert seen.pairs == [3, 4, 5]
    assert src.reads == 3


@pytest.mark.parametrize("live", [False, True])  # seek to the start, or skip to it
def test_seconds_span_gives_the_same_frames_whether_or_not_the_source_seeks(
        frames, pipeline, controlled_source, live):
    src = controlled_source(live=live)
    seen = Collector()
    span = Span(start_s=0.1, end_s=0.2)
    run_frames(src, pipeline, [seen], span=span)
    assert seen.pairs == [3, 4, 5]
    assert [f.result.time_s for f in seen.frames] == pytest.approx([0.1, 4 / 30, 5 / 30])
    # seeks to 3 or skips 0-2; the end is seen on the first pair at or after END
    assert src.reads == (4 if not live else 7)
    if not live:
        assert span.total(src.info) == 3


def test_span_refuses_a_start_past_the_end(frames, controlled_source):
    src = controlled_source(live=False)  # 12 frames at 30 fps: 0.4 s
    with pytest.raises(NirfError, match="--range: starts at 1 s but the source ends at 0.4 s"):
        Span(start_s=1.0).check(src.info, label="--range")


def test_evaluate_scores_the_masks_process_writes(tmp_path):
    """evaluate and process run the same loop: evaluate's Dice is the Dice of
    the masks ``process --masks`` wrote, against the phantom's truth."""
    from nirf_overlay.cli import main
    from nirf_overlay.evaluate import dice, evaluate
    from nirf_overlay.sources import SourceSpec, open_source

    out = tmp_path / "out"
    assert main(["process", "--phantom", "--seed", "2", "--size", "256x160", "--range", ":0.2",
                 "--out", str(out), "--masks", "--no-video", "--no-progress"]) == 0
    # the phantom as process opens it for that range (it renders ceil(0.2 * 30) + 1 frames)
    spec = SourceSpec(phantom=True, seed=2, size=(256, 160), options={"frames": 7})
    with open_source(spec) as source:
        pairs = list(source)[:6]
        calibration = source.own_calibration()
    scored = evaluate(pairs, Pipeline(calibration=calibration))
    written = [cv2.imread(str(out / "masks" / f"{i:06d}.png"), cv2.IMREAD_UNCHANGED) > 0
               for i in range(len(pairs))]
    dices = [dice(m, p.truth.rim_mask) for m, p in zip(written, pairs) if p.truth.rim_mask.any()]
    assert scored["frames"] == len(pairs) == 6
    assert scored["mean_dice"] == pytest.approx(float(np.mean(dices)), abs=1e-12)
    assert scored["mean_dice"] > 0.5
