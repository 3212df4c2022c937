"""One chunk of one session: planning it, and processing it on a Dask worker.

A chunk starts ``warmup`` frames before its first reported frame so that the
temporal state of the pipeline is the one a sequential run would have there
(:func:`warmup_frames`); the worker (:func:`process_chunk`) runs the one
frame loop, :func:`nirf_overlay.engine.run_frames`, over that span and keeps
every frame's rows and the pipeline's state digest at the two ends, which
:func:`~.stitch.verify` compares with the neighbouring chunks.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Optional

from ..engine import Listener, Span, recorded_plane_listeners, run_frames
from ..errors import NirfError

#: frames per chunk (one minute at 30 fps): long enough that the warm-up
#: (about 270 frames with the default settings) costs little, short enough
#: that a lost worker costs little and several workers share one recording.
DEFAULT_CHUNK_FRAMES = 1800


@dataclass
class Chunk:
    session: str  # directory
    start: int  # first frame reported
    stop: int  # one past the last frame reported
    warm_start: int  # first frame processed (<= start)


@dataclass
class ChunkResult:
    session: str
    start: int
    stop: int
    warm_start: int
    #: one entry per processed frame (warm-up included):
    #: (index, frame_row dict, [rim_row dict, ...])
    frames: list = field(default_factory=list)
    error: Optional[str] = None
    seconds: float = 0.0
    warm_digest: Optional[str] = None  # pipeline state after frame start - 1
    end_digest: Optional[str] = None  # pipeline state after frame stop - 1


def warmup_frames(settings) -> int:
    """Frames after which the pipeline's temporal state no longer remembers its start.

    Two recursive filters carry state from frame to frame: the per-pixel
    noise filter (weight ``temporal_alpha**n`` on a value ``n`` frames old)
    and the display levels (``levels.smoothing**n``), whose median sets the
    noise floor of the filter's motion test.  After ``n`` frames with the
    weight below 1e-12 the two runs differ by less than a float32 step, and a
    recursive filter fed the same input then falls onto the same value; the
    frame-to-frame rim hysteresis and the rim tracks (which forget a rim
    after ``max_missed`` frames) follow.  The tissue's motion (which caps the
    noise filter's weight) is the same once both runs took a key frame at a
    multiple of ``MOTION_RULES.key_every``, at most that many frames in: that,
    then the longest of these, plus a margin.
    """
    from ..processing.motion import MOTION_RULES
    from ..processing.track import RimTracker

    def memory(a: float) -> int:
        a = float(a)
        return 0 if a <= 0 else math.ceil(math.log(1e-12) / math.log(a))

    n = max(memory(settings.normalise.temporal_alpha), memory(settings.levels.smoothing),
            RimTracker(1.0).max_missed + 1)
    # the filters see the same weights only from that shared key on
    return int(MOTION_RULES.key_every + n + 10)


def plan_chunks(session: str, frame_count: int, chunk_frames: int, warmup: int,
                plane_from: Optional[int] = None) -> list[Chunk]:
    """Split ``frame_count`` frames into chunks of ``chunk_frames`` with warm-up.

    From ``plane_from`` on (the first frame with a transection plane) one chunk
    runs from frame 0: the plane follows the motion estimated from the
    recording's first frame, whose state (key frames, the chain since the
    anchor) no warm-up reproduces, so only a run from the start anchors and
    moves it exactly as ``process`` does.
    """
    end = frame_count if plane_from is None else max(0, min(int(plane_from), frame_count))
    chunks = []
    for start in range(0, end, chunk_frames):
        stop = min(end, start + chunk_frames)
        chunks.append(Chunk(session, start, stop, max(0, start - warmup)))
    if end < frame_count:
        chunks.append(Chunk(session, end, frame_count, 0))
    return chunks


def plane_from(session, settings) -> Optional[int]:
    """The first frame of ``session`` (a :class:`~nirf_overlay.recording.Session`) with a
    plane in force: 0 for a polygon in ``settings``, else its recorded plane's (None: none)."""
    from ..recording.plane_events import PlaneSchedule

    if settings.plane.polygon:
        return 0
    return PlaneSchedule.from_events(session.events).first_frame


class _ChunkRows(Listener):
    """Keeps every frame's rows of a chunk, and the state digest where its warm-up ends."""

    def __init__(self, out: ChunkResult, pipeline):
        self.out = out
        self.pipeline = pipeline

    def on_result(self, frame) -> None:
        index, result = frame.pair.index, frame.result
        self.out.frames.append((index, result.frame_row(), result.rim_rows()))
        if index == self.out.start - 1:
            self.out.warm_digest = self.pipeline.state_digest()


def process_chunk(chunk: Chunk, settings_dict: dict, calibration_path: Optional[str],
                  nir_transfer=None) -> ChunkResult:
    """Worker: run the pipeline over one chunk of one session (warm-up included);
    ``nir_transfer`` (a parsed Transfer) replaces the calibration's, as in ``process``."""
    from ..calibration import CalibrationRequest, resolve_calibration
    from ..processing.pipeline import Pipeline
    from ..recording import SessionSource, read_session
    from ..settings import Settings

    t0 = time.perf_counter()
    out = ChunkResult(chunk.session, chunk.start, chunk.stop, chunk.warm_start)
    missing = [p for p in (chunk.session, calibration_path) if p and not os.path.exists(p)]
    if missing:  # the client saw it (it planned the chunk): this worker does not
        out.error = (f"{missing[0]}: not visible on worker {_worker_name()} (give every worker "
                     "the same path: a shared file system mounted at the same place)")
        return out
    try:
        settings = Settings.from_dict(settings_dict)
        with SessionSource(chunk.session) as source:
            request = CalibrationRequest(profile=calibration_path, nir_transfer=nir_transfer)
            pipeline = Pipeline(settings, resolve_calibration(request, source).calibration)
            # a study runs one chunk per core already (a worker process each): a frame's
            # lesions in turn, not on a pool of its own beside the other chunks
            pipeline.analysis_workers = 1
            _pin_references(pipeline, read_session(chunk.session))
            # a recorded plane in force where it was live, as process does
            listeners = [*recorded_plane_listeners(source, pipeline, settings),
                         _ChunkRows(out, pipeline)]
            run_frames(source, pipeline, listeners,
                       span=Span(first=chunk.warm_start, stop=chunk.stop))
            out.end_digest = pipeline.state_digest()
    except NirfError as e:
        out.error = str(e)
    except Exception as e:  # a broken recording must not stop the study
        out.error = f"{chunk.session}: {e.__class__.__name__}: {e}"
    out.seconds = time.perf_counter() - t0
    return out


def _worker_name() -> str:
    """This Dask worker's address (the host name outside a worker)."""
    import socket

    try:
        from distributed import get_worker

        return get_worker().address
    except ValueError:  # not running in a worker
        return socket.gethostname()


def _pin_references(pipeline, session) -> None:
    """Without calibrated references, a pipeline takes the first frame's gain and
    exposure as its own; a chunk must take the session's first frame's too."""
    from ..recording.format import opt_float

    norm = pipeline.normaliser
    if not session.frames:
        return
    first = session.frames[0]
    if norm.gain_ref is None:
        norm.gain_ref = opt_float(first.get("gain", ""))
    if norm.exposure_ref is None:
        norm.exposure_ref = opt_float(first.get("exposure_ms", ""))
