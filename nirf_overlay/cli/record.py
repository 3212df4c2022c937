"""`nirf-overlay record`: record any source losslessly into a session directory.

Live sources record until ``--seconds`` pass or Ctrl-C (or SIGTERM, SIGHUP), which
stops cleanly (exit 130, 143, 129).  File sources and sessions are imported as fast as the encoders
go, waiting for room in the queue rather than dropping frames.
"""

from __future__ import annotations

import argparse


def add_parser(parser: argparse.ArgumentParser) -> None:
    from ..recording.format import DEFAULT_WL_CODEC, WL_CODECS
    from .common import add_pipeline_arguments, non_negative_number, positive_number
    from .source_args import add_source_arguments

    parser.add_argument("--out", metavar="DIR",
                        help="new session directory (refused if it exists and is not empty)")
    parser.add_argument("--compact", metavar="SESSION",
                        help="only re-encode a finished session's remaining FFVHuff NIR "
                             "segments to FFV1, then exit")
    parser.add_argument("--seconds", type=positive_number, metavar="S",
                        help="stop after S seconds (live) or S seconds of frames (files)")
    parser.add_argument("--label", metavar="TEXT",
                        help="free text stored in session.json (e.g. a case number); nothing "
                             "else identifying is written")
    parser.add_argument("--wl-codec", choices=tuple(WL_CODECS), default=DEFAULT_WL_CODEC,
                        help="white-light codec: ffvhuff = lossless, fastest to encode "
                             "(default); utvideo = lossless, fastest to replay (even sizes "
                             "only); x264 = "
                             "near-lossless H.264 4:4:4 crf 10, 4-7x smaller; x264rgb, ffv1 = "
                             "lossless, slower")
    parser.add_argument("--ffv1", action="store_true",
                        help="also re-encode NIR to FFV1 (archival codec; bit-exact, ~10%% "
                             "smaller, ~2.5x slower to replay) in idle time and at the end")
    parser.add_argument("--segment-seconds", type=positive_number, default=1.0, metavar="S",
                        help="segment file length; a crash loses at most about this (default 1)")
    parser.add_argument("--min-free-mb", type=non_negative_number, metavar="MB",
                        help="refuse to start with less free space (default: 10 s of raw "
                             "frames, at least 1024 MB)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    add_source_arguments(parser)
    add_pipeline_arguments(parser)


def run(args) -> int:
    import os
    import sys

    from ..calibration import resolve_calibration
    from ..errors import NirfError
    from ..recording import Recorder
    from ..recording.format import SESSION_JSON
    from ..recording.session_writer import check_new_session_dir
    from ..shutdown import atomic, exit_code, signal_name
    from ..sources import open_source
    from .common import calibration_request, settings_from_args
    from .source_args import spec_from_args

    if args.compact:
        if not os.path.isfile(os.path.join(args.compact, SESSION_JSON)):
            raise NirfError(f"{args.compact}: not a recorded session (no {SESSION_JSON}); give a "
                            "folder that nirf-overlay record wrote")
        _compact(args.compact, quiet=args.quiet)
        return 0
    out = args.out
    if not out:
        raise NirfError("--out: missing (the new session directory)")
    check_new_session_dir(out)  # before the source opens: a phantom renders for seconds
    if args.seconds is not None and not args.seconds > 0:
        raise NirfError(f"--seconds: {args.seconds:g} is not positive")
    if not 0.1 <= args.segment_seconds <= 60:
        raise NirfError(f"--segment-seconds: {args.segment_seconds:g} is outside 0.1..60")

    spec = spec_from_args(args)
    source = open_source(spec)
    try:
        info = source.info
        # a session being re-recorded keeps its settings unless --settings says otherwise
        recorded = source.own_settings() if args.settings is None else None
        settings = recorded if recorded is not None else settings_from_args(args)
        calibration = resolve_calibration(calibration_request(args), source).calibration
        recorder = Recorder(
            out, info, settings, calibration, label=args.label, wl_codec=args.wl_codec,
            segment_seconds=args.segment_seconds, compact=args.ffv1,
            min_free_bytes=None if args.min_free_mb is None else int(args.min_free_mb * 2**20),
        )
        if info.live and not source.wait_ready(0.0):
            # a source that pre-renders (the phantom) would otherwise record its warm-up
            if not args.quiet:
                print("waiting for the source to get ready...", file=sys.stderr, flush=True)
            source.wait_ready(120.0)
        dropped_before = source.stats.dropped  # not ours: the warm-up's
        try:
            elapsed, interrupted = _record(source, recorder, args, info, quiet=args.quiet)
        finally:
            with atomic():  # a second signal waits until the session is finalised
                st = recorder.stop()
    finally:
        source.close()
    if args.ffv1 and not st.error:
        _compact(out, quiet=args.quiet)

    size = _dir_size(out)
    fps = st.frames_safe / elapsed if elapsed > 0 else 0.0
    dropped = source.stats.dropped - dropped_before
    print(f"recorded {st.frames_safe} frames ({st.frames_not_written} not written, {dropped} "
          f"dropped by the source) in {elapsed:.1f} s = {fps:.1f} fps; {size / 1e6:.1f} MB on "
          f"disk -> {out}" + (f" (stopped by {signal_name(interrupted)})" if interrupted else ""))
    if st.error:
        print(f"nirf-overlay: error: {st.error}", file=sys.stderr)
        return 1
    return exit_code(interrupted) if interrupted else 0


def _record(source, recorder, args, info, *, quiet: bool):
    """Feed the recorder until the end, --seconds, a stop signal or a recorder error.

    Returns (elapsed seconds, the KeyboardInterrupt/Stopped that ended it or None)."""
    import sys
    import time

    live = bool(info.live)
    fps = float(info.fps or 30.0)
    max_frames = None
    if args.seconds is not None and not live:
        max_frames = max(1, int(round(args.seconds * fps)))
    t0 = time.monotonic()
    next_report = t0 + 1.0
    n = 0
    interrupted = None
    try:
        while True:
            now = time.monotonic()
            if live and args.seconds is not None and now - t0 >= args.seconds:
                break
            if max_frames is not None and n >= max_frames:
                break
            try:
                pair = source.read(timeout=1.0) if live else source.read()
            except TimeoutError:
                continue
            if pair is None:
                break
            recorder.submit(pair, block=not live)
            n += 1
            st = recorder.status()
            if not st.recording:
                break
            if not quiet and now >= next_report:
                next_report = now + 1.0
                _progress(st, now - t0, sys.stderr)
    except KeyboardInterrupt as e:  # Ctrl-C, SIGTERM, SIGHUP (shutdown.Stopped)
        interrupted = e
    return time.monotonic() - t0, interrupted


def _progress(st, elapsed: float, stream) -> None:
    rate = st.frames_written / elapsed if elapsed > 0 else 0.0
    warn = f"  WARNING: {st.warning}" if st.warning else ""
    print(f"  {elapsed:6.1f} s  {st.frames_written} frames written, {st.frames_not_written} not "
          f"written, {st.queue_frames} queued, {rate:.1f} fps, "
          f"{st.bytes_on_disk / 1e6:.0f} MB{warn}", file=stream, flush=True)


def _compact(out: str, *, quiet: bool) -> None:
    """Finish re-encoding NIR to FFV1; Ctrl-C leaves the rest FFVHuff (still lossless)."""
    import sys

    from ..recording import compact_session

    def progress(done, total):
        if not quiet:
            print(f"  compacting NIR to FFV1 (Ctrl-C leaves the rest FFVHuff, lossless): "
                  f"{done}/{total} segments", file=sys.stderr, flush=True)

    try:
        compact_session(out, progress=progress)
    except KeyboardInterrupt:
        print("compaction interrupted: the remaining NIR segments stay FFVHuff (lossless); "
              f"run `nirf-overlay record --compact {out}` later", file=sys.stderr)


def _dir_size(path: str) -> int:
    import os

    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total
