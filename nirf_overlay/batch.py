"""Analyse many recorded sessions on a Dask cluster.

Each session is cut into frame-range chunks.  A chunk starts ``warmup``
frames before its first reported frame so that the temporal state of the
pipeline (the noise filter, the rim tracks) is the one a sequential run
would have there; the warm-up frames are processed and thrown away.  Rim ids,
which a tracker numbers in order of first appearance, are then renumbered
chunk by chunk: the frames a chunk shares with the previous one (its warm-up)
tell which of its ids are which already-known rims, and rims new in the chunk
continue the count.  The result is the same, frame for frame and cell for
cell, as ``nirf-overlay process`` on the whole session.

Everything here is Qt-free and runs in Dask worker processes; the worker
function is :func:`process_chunk`.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import Optional

from .errors import NirfError
from .processing.result import FRAME_COLUMNS, RIM_COLUMNS, row_cells

log = logging.getLogger(__name__)

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
    after ``max_missed`` frames) follow.  The longest of these, plus a margin.
    """
    from .processing.track import RimTracker

    def memory(a: float) -> int:
        a = float(a)
        return 0 if a <= 0 else math.ceil(math.log(1e-12) / math.log(a))

    n = max(memory(settings.normalise.temporal_alpha), memory(settings.levels.smoothing),
            RimTracker(1.0).max_missed + 1)
    return int(n + 10)


def plan_chunks(session: str, frame_count: int, chunk_frames: int, warmup: int) -> list[Chunk]:
    """Split ``frame_count`` frames into chunks of ``chunk_frames`` with warm-up."""
    chunks = []
    for start in range(0, frame_count, chunk_frames):
        stop = min(frame_count, start + chunk_frames)
        chunks.append(Chunk(session, start, stop, max(0, start - warmup)))
    return chunks


def state_digest(pipeline) -> str:
    """A hash of everything a pipeline carries from one frame to the next.

    Two pipelines with the same digest give the same output for the same
    input from then on.  Rim ids and track ages are left out: ids are
    renumbered by :func:`stitch`, and ages do not change any output.
    """
    import hashlib

    import numpy as np

    h = hashlib.sha1()

    def add(obj, skip=()):
        for name, v in sorted(vars(obj).items()):
            if name in skip:
                continue
            if isinstance(v, np.ndarray):
                h.update(name.encode())
                h.update(str(v.dtype).encode() + str(v.shape).encode())
                h.update(np.ascontiguousarray(v).tobytes())
            elif v is None or isinstance(v, (bool, int, float, str, tuple)):
                h.update(f"{name}={v!r};".encode())
            elif hasattr(v, "__dataclass_fields__"):
                h.update(f"{name}={v!r};".encode())

    add(pipeline.normaliser, skip=("calibration",))
    add(pipeline.display_levels)
    add(pipeline.analyzer, skip=("settings", "mm_per_px"))
    for t in pipeline.analyzer.tracker.tracks:
        h.update(f"track {t.centroid!r} {t.area_px!r} {t.missed};".encode())
    h.update(f"{pipeline.levels!r} {pipeline.threshold!r} {pipeline.noise_sigma!r}".encode())
    return h.hexdigest()


def process_chunk(chunk: Chunk, settings_dict: dict, calibration_path: Optional[str]) -> ChunkResult:
    """Worker: run the pipeline over one chunk of one session (warm-up included)."""
    from .calibration import CalibrationRequest, resolve_calibration
    from .processing.pipeline import Pipeline
    from .recording import SessionSource, read_session
    from .settings import Settings

    t0 = time.perf_counter()
    out = ChunkResult(chunk.session, chunk.start, chunk.stop, chunk.warm_start)
    try:
        settings = Settings.from_dict(settings_dict)
        with SessionSource(chunk.session) as source:
            request = CalibrationRequest(profile=calibration_path)
            pipeline = Pipeline(settings, resolve_calibration(request, source).calibration)
            _pin_references(pipeline, read_session(chunk.session))
            source.seek(chunk.warm_start)
            for index in range(chunk.warm_start, chunk.stop):
                pair = source.read()
                if pair is None:
                    break
                result = pipeline.process(pair)
                result.time_s = pair.wl_time  # as run_process does for recorded sources
                out.frames.append((pair.index, result.frame_row(), result.rim_rows()))
                if index == chunk.start - 1:
                    out.warm_digest = state_digest(pipeline)
            out.end_digest = state_digest(pipeline)
    except NirfError as e:
        out.error = str(e)
    except Exception as e:  # a broken recording must not stop the study
        out.error = f"{chunk.session}: {e.__class__.__name__}: {e}"
    out.seconds = time.perf_counter() - t0
    return out


def _pin_references(pipeline, session) -> None:
    """Without calibrated references, a pipeline takes the first frame's gain and
    exposure as its own; a chunk must take the session's first frame's too."""
    from .recording.format import opt_float

    norm = pipeline.normaliser
    if not session.frames:
        return
    first = session.frames[0]
    if norm.gain_ref is None:
        norm.gain_ref = opt_float(first.get("gain", ""))
    if norm.exposure_ref is None:
        norm.exposure_ref = opt_float(first.get("exposure_ms", ""))


def _result_of(fut, name) -> ChunkResult:
    try:
        return fut.result()
    except Exception as e:  # the task failed even after its retries
        return ChunkResult("", 0, 0, 0, error=f"{name}: chunk failed ({e.__class__.__name__}: {e})")


def _verify(results: list, rerun) -> tuple[list, int]:
    """Make sure every chunk started from the state a sequential run has there.

    A chunk is exact when the previous (exact) chunk ends in the state this
    chunk reached at the end of its warm-up (same :func:`state_digest`).  A
    chunk whose warm-up was too short for that is run again with twice the
    warm-up, back to the start of the recording if need be, which is exact by
    construction.  Returns the exact results and the number of re-runs.
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


# -- stitching ----------------------------------------------------------------

def _centroids(rim_rows) -> dict:
    return {r["rim_id"]: (r["centroid_x"], r["centroid_y"]) for r in rim_rows}


def stitch(results: list[ChunkResult]) -> tuple[list, list, Optional[str]]:
    """Join one session's chunk results into sequential frame and rim rows.

    Returns ``(frame_rows, rim_rows, error)``; rim ids renumbered as a
    sequential run numbers them (see the module docstring).
    """
    results = sorted(results, key=lambda r: r.start)
    errors = [r.error for r in results if r.error]
    frame_rows, rim_rows = [], []
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
            seen = {}
            for row in rrows:
                rid = row["rim_id"]
                if rid not in mapping:
                    mapping[rid] = next_id
                    next_id += 1
                row = dict(row, rim_id=mapping[rid])
                rim_rows.append(row)
                seen[row["rim_id"]] = (row["centroid_x"], row["centroid_y"])
            frame_rows.append(frow)
            previous[index] = seen
        next_id = max([next_id] + [g + 1 for g in mapping.values()])
    return frame_rows, rim_rows, (errors[0] if errors else None)


def write_session_csv(out_dir: str, frame_rows: list, rim_rows: list) -> None:
    """``metrics.csv`` and ``rims.csv`` cell for cell as ``process`` writes them."""
    os.makedirs(out_dir, exist_ok=True)
    _write_csv(os.path.join(out_dir, "metrics.csv"), FRAME_COLUMNS, frame_rows)
    _write_csv(os.path.join(out_dir, "rims.csv"), RIM_COLUMNS, rim_rows)


def _write_csv(path: str, columns, rows) -> None:
    """A header and one line per row, cells formatted as ``process`` formats them."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for row in rows:
            w.writerow(row_cells(row, columns))


# -- study level ----------------------------------------------------------------

def _session_facts(path: str) -> dict:
    """Frame count, frames dropped at capture, and a readable name, or an error."""
    from .recording import read_session

    session = read_session(path)
    dropped = 0
    for row in getattr(session, "frames", []) or []:
        for key in ("dropped_before", "unpaired", "not_written_before"):
            try:
                dropped += int(float(row.get(key) or 0))
            except (TypeError, ValueError, AttributeError):
                pass
    return {"frame_count": session.frame_count, "dropped": dropped, "fps": session.fps}


def summarise(name: str, frame_rows: list, rim_rows: list, facts: dict, error) -> dict:
    import numpy as np

    def med(key, rows):
        vals = [r[key] for r in rows if r.get(key) is not None]
        return float(np.median(vals)) if vals else None

    with_rim = [r for r in frame_rows if r["rims"]]
    flags = [int(r["plane_fluorescence"]) for r in frame_rows]
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
    }


SUMMARY_COLUMNS = ("session", "frames", "frames_expected", "frames_with_rim", "rims",
                   "median_tbr", "median_rim_thickness_mm", "median_rim_completeness",
                   "plane_fluorescence_frames", "plane_fluorescence_events", "frames_dropped",
                   "chunks_rerun", "error")


def _unique_names(paths: list[str]) -> list[str]:
    names, seen = [], {}
    for p in paths:
        base = os.path.basename(os.path.normpath(p)) or "session"
        n = seen.get(base, 0)
        seen[base] = n + 1
        names.append(base if n == 0 else f"{base}-{n + 1}")
    return names


def run_batch(sessions: list[str], out_dir: str, *, settings=None, calibration: Optional[str] = None,
              workers: int = 2, scheduler: Optional[str] = None,
              chunk_frames: int = DEFAULT_CHUNK_FRAMES, progress: bool = True,
              client=None) -> dict:
    """Process ``sessions`` on Dask and write per-session CSVs, the study table and report.

    Parameters
    ----------
    sessions : session directories
    out_dir : output directory (created)
    settings : :class:`~nirf_overlay.settings.Settings` for every session (defaults if None)
    calibration : profile path applied to every session (else each session's own)
    workers : worker processes of the LocalCluster (ignored with ``scheduler``/``client``)
    scheduler : address of an existing Dask scheduler (``tcp://host:8786``)
    client : an existing :class:`distributed.Client` (tests)

    Returns
    -------
    dict with ``summary`` (one dict per session), ``frames`` (total), ``seconds``,
    ``fps``, ``workers``, ``fps_per_worker``, ``out_dir``.
    """
    from .settings import Settings

    settings = settings or Settings()
    if calibration:  # refuse a bad profile before any worker starts
        from .calibration.profile import load_profile

        load_profile(calibration)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise NirfError(f"{out_dir}: cannot create output directory ({e.strerror})") from None
    names = _unique_names(sessions)
    warmup = warmup_frames(settings)
    facts, chunks_by_session = {}, {}
    for path, name in zip(sessions, names):
        try:
            facts[name] = _session_facts(path)
        except NirfError as e:
            facts[name] = {"error": str(e)}
            continue
        except Exception as e:
            facts[name] = {"error": f"{path}: unreadable session ({e.__class__.__name__}: {e})"}
            continue
        chunks_by_session[name] = plan_chunks(path, facts[name]["frame_count"], chunk_frames, warmup)

    own_cluster = None
    t0 = time.perf_counter()
    results: dict = {name: [] for name in names}
    if client is None:
        from distributed import Client, LocalCluster

        if scheduler:
            try:
                client = Client(scheduler, timeout="10s")
            except OSError as e:
                raise NirfError(f"--scheduler {scheduler}: cannot connect ({e})") from None
        else:
            own_cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
            client = Client(own_cluster)
    n_workers = len(client.scheduler_info().get("workers", {})) or workers
    settings_dict = settings.to_dict()
    futures = []

    def submit(name, ch):
        # retries: a chunk whose worker died is run again elsewhere
        return client.submit(process_chunk, ch, settings_dict, calibration, pure=False,
                             retries=2, key=f"chunk-{name}-{ch.start}-{ch.warm_start}-{time.time_ns()}")

    try:
        from distributed import as_completed

        for name, chunks in chunks_by_session.items():
            for ch in chunks:
                futures.append((name, submit(name, ch)))
        by_future = {fut: name for name, fut in futures}
        bar = None
        if progress:
            from tqdm import tqdm

            total = sum(ch.stop - ch.start for chs in chunks_by_session.values() for ch in chs)
            bar = tqdm(total=total, unit="frame", desc="batch", dynamic_ncols=True, leave=False)
        try:
            for fut in as_completed([f for _, f in futures]):
                name = by_future[fut]
                results[name].append(_result_of(fut, name))
                if bar is not None:
                    bar.update(results[name][-1].stop - results[name][-1].start)
        finally:
            if bar is not None:
                bar.close()
        for name in chunks_by_session:
            results[name], reruns = _verify(results[name], lambda ch: _result_of(submit(name, ch), name))
            facts[name]["reruns"] = reruns
            if reruns:
                log.info("%s: %d chunk(s) re-run with a longer warm-up", name, reruns)
    except KeyboardInterrupt:
        client.cancel([f for _, f in futures])
        raise
    finally:
        if own_cluster is not None:
            client.close()
            own_cluster.close()
    seconds = time.perf_counter() - t0

    summary, study = [], []
    total_frames = 0
    for path, name in zip(sessions, names):
        error = facts[name].get("error")
        frame_rows, rim_rows = [], []
        if not error:
            frame_rows, rim_rows, error = stitch(results[name])
            if error:
                frame_rows, rim_rows = [], []
        if not error:
            write_session_csv(os.path.join(out_dir, name), frame_rows, rim_rows)
        total_frames += len(frame_rows)
        summary.append(summarise(name, frame_rows, rim_rows, facts[name], error))
        study.extend(dict(row, session=name) for row in frame_rows)
    _write_study(out_dir, study, summary)
    from .report import write_report

    write_report(os.path.join(out_dir, "report.html"), out_dir, summary, study)
    fps = total_frames / seconds if seconds > 0 else 0.0
    return {"summary": summary, "frames": total_frames, "seconds": seconds, "fps": fps,
            "workers": n_workers, "fps_per_worker": fps / max(1, n_workers), "out_dir": out_dir}


def _write_study(out_dir: str, study: list, summary: list) -> None:
    import pandas as pd

    columns = ["session", *FRAME_COLUMNS]
    frame = pd.DataFrame(study, columns=columns)
    frame.to_parquet(os.path.join(out_dir, "study_frames.parquet"), index=False)
    _write_csv(os.path.join(out_dir, "study_frames.csv"), columns, study)
    _write_csv(os.path.join(out_dir, "summary.csv"), SUMMARY_COLUMNS, summary)
