"""``run_batch``: sessions cut into chunks, processed on a Dask cluster, written as a study."""

from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from typing import Optional

from ..errors import NirfError
from ..outputs import check_new_output_dir, make_new_output_dir
from ..privacy import shown_in
from .chunks import (DEFAULT_CHUNK_FRAMES, ChunkResult, plan_chunks, plane_from, process_chunk,
                     warmup_frames)
from .report import write_report
from .stitch import stitch, verify
from .study import session_facts, summarise, unique_names, write_session, write_study

log = logging.getLogger(__name__)


def run_batch(sessions: list[str], out_dir: str, *, settings=None, calibration: Optional[str] = None,
              nir_transfer=None, workers: int = 2, scheduler: Optional[str] = None,
              chunk_frames: int = DEFAULT_CHUNK_FRAMES, progress: bool = True,
              client=None, security=None, prepare=None, keep_paths: bool = False) -> dict:
    """Process ``sessions`` on Dask and write per-session CSVs, the study table and report.

    Parameters
    ----------
    sessions : session directories
    out_dir : output directory (created; an existing one must be empty)
    settings : :class:`~nirf_overlay.settings.Settings` for every session (defaults if None)
    calibration : profile path applied to every session (else each session's own)
    nir_transfer : a parsed :class:`~nirf_overlay.calibration.transfer.Transfer` applied to
        every session (replaces the profile's, as ``--nir-transfer`` does for ``process``);
        it travels to the workers whole (a LUT's table too: no file to share)
    workers : worker processes of the LocalCluster (ignored with ``scheduler``/``client``)
    scheduler : address of an existing Dask scheduler (``tcp://host:8786``)
    client : an existing :class:`distributed.Client` (tests)
    keep_paths : the summary's and report's errors name sessions by their paths as given
        (default: by their folder's own name, as the outputs are named; privacy.py)
    security : :class:`distributed.security.Security` for a ``tls://`` scheduler (None:
        Dask's configuration; :func:`~.security.tls_security`)
    prepare : called once the sessions are planned and the output directory made, before
        the cluster starts (the CLI compiles the kernels there, after the refusals)

    Returns
    -------
    dict with ``summary`` (one dict per session), ``frames`` (total), ``seconds``,
    ``fps``, ``workers`` (alive at the end), ``workers_lost`` (died during the run),
    ``fps_per_worker``, ``out_dir``.
    """
    from ..settings import Settings

    settings = settings or Settings()
    if client is None:
        check_scheduler(scheduler)
    # workers run elsewhere (another cwd, another machine): they get absolute paths
    given = list(sessions)  # messages name the paths as the user gave them
    sessions = [os.path.abspath(s) for s in sessions]
    calibration = os.path.abspath(calibration) if calibration else None
    if calibration:  # refuse a bad profile before any worker starts
        from ..calibration.profile import load_profile

        load_profile(calibration)
    check_new_output_dir(out_dir)  # an earlier run's folder is the first thing to say
    names = unique_names(sessions)
    facts, chunks = _plan(sessions, names, chunk_frames, warmup_frames(settings), settings)
    if not chunks:  # one bad session among good ones is reported; none readable is a mistake
        first = f" (first: {facts[names[0]]['error'].replace(sessions[0], given[0])})" if given else ""
        raise NirfError(f"batch: none of the {len(given)} session(s) can be read{first}; give "
                        "folders that nirf-overlay record wrote")
    make_new_output_dir(out_dir)  # never mixed with an earlier run (nirf_overlay.outputs)
    if prepare is not None:
        prepare()
    t0 = time.perf_counter()
    with _cluster(client, scheduler, workers, security) as client:
        started = set(client.scheduler_info().get("workers", {}))
        results = _run_chunks(client, chunks, settings.to_dict(), (calibration, nir_transfer),
                              facts, progress)
        alive = set(client.scheduler_info().get("workers", {}))
        n_workers = len(alive) or workers
        lost = len(started - alive)
    seconds = time.perf_counter() - t0

    summary, study = [], []
    total_frames = 0
    for name, path, as_given in zip(names, sessions, given):
        error = facts[name].get("error")
        frames = []
        if not error:
            frames, error = stitch(results[name])
        if error:
            frames = []
        else:
            write_session(os.path.join(out_dir, name), frames)
        frame_rows = [row for row, _ in frames]
        rim_rows = [row for _, rows in frames for row in rows]
        total_frames += len(frame_rows)
        if error:
            error = error.replace(path, as_given) if keep_paths else shown_in(error, path)
        summary.append(summarise(name, frame_rows, rim_rows, facts[name], error))
        study.extend(dict(row, session=name) for row in frame_rows)
    write_study(out_dir, study, summary)
    write_report(os.path.join(out_dir, "report.html"), summary, study)
    fps = total_frames / seconds if seconds > 0 else 0.0
    return {"summary": summary, "frames": total_frames, "seconds": seconds, "fps": fps,
            "workers": n_workers, "workers_lost": lost,
            "fps_per_worker": fps / max(1, n_workers), "out_dir": out_dir}


def _plan(sessions, names, chunk_frames, warmup, settings) -> tuple[dict, dict]:
    """Per session name: its facts (or ``{"error": ...}``) and its chunks (readable ones only)."""
    from ..recording import read_session

    facts, chunks = {}, {}
    for path, name in zip(sessions, names):
        try:
            facts[name] = session_facts(path)
            facts[name]["plane_from"] = plane_from(read_session(path), settings)
        except NirfError as e:
            facts[name] = {"error": str(e)}
            continue
        except Exception as e:
            facts[name] = {"error": f"{path}: unreadable session ({e.__class__.__name__}: {e})"}
            continue
        chunks[name] = plan_chunks(path, facts[name]["frame_count"], chunk_frames, warmup,
                                   facts[name]["plane_from"])
    return facts, chunks


def check_scheduler(address: Optional[str]) -> None:
    """Refuse a ``--scheduler`` address Dask cannot use, before anything starts."""
    if not address:
        return
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import get_backend

    try:
        scheme, location = parse_address(address)
        get_backend(scheme)
        if scheme in ("tcp", "tls"):
            parse_host_port(location, 8786)
    except (ValueError, TypeError) as e:
        raise NirfError(f"--scheduler {address}: not a Dask scheduler address ({e}); give "
                        "tcp://HOST:PORT or tls://HOST:PORT, or leave it out for a local "
                        "cluster") from None


@contextmanager
def _cluster(client, scheduler: Optional[str], workers: int, security=None):
    """``client`` itself, or a client of ``scheduler``, or of a LocalCluster closed afterwards."""
    if client is not None:
        yield client
        return
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="10s",
                            **({"security": security} if security is not None else {}))
        except (OSError, TypeError) as e:
            raise NirfError(f"--scheduler {scheduler}: cannot connect ({e}); is the scheduler "
                            "running there (dask scheduler)? give its address as it prints it, "
                            "or leave --scheduler out for a local cluster") from None
        try:
            yield client
        finally:
            client.close()
        return
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _run_chunks(client, chunks: dict, settings_dict: dict, calibration: tuple, facts: dict,
                progress: bool) -> dict:
    """Every chunk's result, verified (re-run where a warm-up fell short), per session name;
    ``calibration`` is ``(profile path or None, transfer or None)``."""
    from distributed import as_completed

    results: dict = {name: [] for name in facts}

    def submit(name, ch):
        # retries: a chunk whose worker died is run again elsewhere
        return client.submit(process_chunk, ch, settings_dict, *calibration, pure=False,
                             retries=2, key=f"chunk-{name}-{ch.start}-{ch.warm_start}-{time.time_ns()}")

    futures = {submit(name, ch): name for name, chs in chunks.items() for ch in chs}
    bar = None
    if progress:
        from tqdm import tqdm

        total = sum(ch.stop - ch.start for chs in chunks.values() for ch in chs)
        bar = tqdm(total=total, unit="frame", desc="batch", dynamic_ncols=True, leave=False)
    try:
        for fut in as_completed(list(futures)):
            res = _result_of(fut, futures[fut])
            results[futures[fut]].append(res)
            if bar is not None:
                bar.update(res.stop - res.start)
        for name in chunks:
            results[name], reruns = verify(results[name], lambda ch: _result_of(submit(name, ch), name))
            facts[name]["reruns"] = reruns
            if reruns:
                log.info("%s: %d chunk(s) re-run with a longer warm-up", name, reruns)
    except KeyboardInterrupt:
        client.cancel(list(futures))
        raise
    finally:
        if bar is not None:
            bar.close()
    return results


def _result_of(fut, name) -> ChunkResult:
    try:
        return fut.result()
    except Exception as e:  # the task failed even after its retries
        return ChunkResult("", 0, 0, 0, error=f"{name}: chunk failed ({e.__class__.__name__}: {e})")
