"""`nirf-overlay bench`: time the pipeline against a plain OpenCV/numpy version."""

from __future__ import annotations

import argparse

from .common import non_negative_count, positive_count, positive_number


def add_parser(parser: argparse.ArgumentParser) -> None:
    from .source_args import add_source_arguments
    from .common import add_pipeline_arguments

    add_source_arguments(parser)
    add_pipeline_arguments(parser)
    g = parser.add_argument_group("bench")
    g.add_argument("--frames", type=positive_count, default=100,
                   help="frames to time (default 100; the phantom renders a loop of up to "
                        "~768 MB of distinct frames and plays it back and forth)")
    g.add_argument("--plain-frames", type=positive_count, default=10,
                   help="frames to time the plain version on (default 10; it is slow)")
    g.add_argument("--warmup", type=non_negative_count, default=5, help="untimed frames first (default 5)")
    g.add_argument("--rate", type=positive_number, metavar="FPS",
                   help="frame rate the live run is fed at (default: the source's; the phantom "
                        "60 fps up to 1920x1080, 30 above)")
    g.add_argument("--every-frame", action="store_true",
                   help="headline figures for every frame analysed in turn (as `process` and "
                        "`batch` run) instead of the live viewer's way (analysis on its own thread)")
    g.add_argument("--no-live", action="store_true", help="skip the live run")
    g.add_argument("--json", action="store_true", help="last line: one JSON object of the results")
    g.add_argument("--no-reuse", action="store_true",
                   help="skip the second every-frame run (the other way of segment.reuse_rims: "
                        "rims re-measured where the motion puts them)")
    g.add_argument("--json-out", metavar="FILE",
                   help="write every figure, with versions, CPU count and git describe, to FILE")
    g.add_argument("--compare", metavar="OLD.json",
                   help="print each figure's ratio new / old against a file written by --json-out")


def _reads_a_stream(args) -> bool:
    """A source on the command line other than the phantom (which bench defaults to)."""
    return bool(args.source or args.wl or args.nir or args.combined)


def _live_rate(args, info, size) -> float:
    """Frames per second to feed the live run: --rate, else the source's own
    rate, else the issue's targets (1080p60, 4K30)."""
    if args.rate:
        return float(args.rate)
    fps = None if info is None else info.fps
    if fps and fps > 0 and (_reads_a_stream(args) or args.fps):
        return float(fps)
    w, h = size
    return 60.0 if w * h <= 1920 * 1080 else 30.0


def _stages(stages: dict) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in stages.items())


def _measured_so_far(parts: dict) -> list:
    """Lines for the timed runs a stopped bench finished."""
    names = {"every_frame": "every frame analysed in turn",
             "reuse_other": "every frame analysed, segment.reuse_rims the other way",
             "live": "live (display path)", "plain": "plain version"}
    return [f"  {names[k]}: median {v['median']:.2f} ms, p99 {v['p99']:.2f} ms per frame"
            for k, v in parts.items() if v and k in names]


def run(args) -> int:
    import json
    import os
    import sys

    from ..bench_figures import compare, format_compare, load_figures, write_json
    from .common import check_output_file, settings_from_args
    from .source_args import spec_from_args

    # refused before anything is loaded or timed
    check_output_file(args.json_out, "--json-out")
    old = load_figures(args.compare) if args.compare else None
    settings = settings_from_args(args)
    if _reads_a_stream(args):
        spec = spec_from_args(args)
    else:
        # no source: the phantom, 1080p unless --size says otherwise
        spec = spec_from_args(args, phantom=True, size=args.size or (1920, 1080))
        if not args.fps:  # its motion per frame as at the rate it is fed at
            spec.fps = _live_rate(args, None, spec.size or (1920, 1080))
    spec.realtime = False
    spec.loop = False
    n = args.frames + max(0, args.warmup)
    if spec.phantom:
        spec.options["frames"] = n
    out = sys.stderr if args.json else sys.stdout
    log = lambda *a: print(*a, file=out, flush=True)  # noqa: E731
    log(f"bench: loading {n} frames from {spec.describe()} ...")
    parts: dict = {}
    try:
        res = _bench(args, spec, n, settings, log, parts)
    except KeyboardInterrupt:  # SIGINT, SIGTERM, SIGHUP: what was measured, then cli.main's line
        done = _measured_so_far(parts)
        log("bench: stopped; " + ("measured so far:" if done else "nothing timed yet"))
        for line in done:
            log(line)
        raise
    res["cores"] = os.cpu_count()
    res["source"] = spec.describe()
    _report(res, log)
    if args.json_out:
        write_json(args.json_out, res)
        log(f"figures written to {args.json_out}")
    if old is not None:
        log(format_compare(compare(res, old), f"{args.compare} ({old.get('git') or 'no git'})",
                           res, old))
    if args.json:
        print(json.dumps(res))
    return 0


def _bench(args, spec, n, settings, log, parts: dict) -> dict:
    """Load the frames and time them (:func:`~nirf_overlay.bench.run_bench`); ``parts``
    fills with each finished run."""
    from ..bench import run_bench
    from ..calibration import resolve_calibration
    from ..errors import NirfError
    from ..sources import open_source
    from .common import calibration_request, prepare_kernels

    pairs = []
    with open_source(spec) as source:
        for pair in source:
            pairs.append(pair)
            if len(pairs) >= n:
                break
        calibration = resolve_calibration(calibration_request(args), source).calibration
    if not pairs:
        raise NirfError(f"{spec.describe()}: no frames to time")
    w, h = pairs[0].wl.shape[1], pairs[0].wl.shape[0]
    rate = None if args.no_live else _live_rate(args, source.info, (w, h))
    prepare_kernels()  # one progress line when they compile, not counted in construct_ms
    return run_bench(pairs, settings, calibration, warmup=max(0, args.warmup),
                     plain_frames=args.plain_frames, rate=rate,
                     headline="every-frame" if args.every_frame else "live",
                     reuse=not args.no_reuse, parts=parts,
                     step=lambda name: log(f"bench: timing {name} ..."))


def _report(res: dict, log) -> None:
    """The figures in words."""
    w, h = res["size"]
    rate = res.get("live_rate_fps")
    threads = f"{res['threads']} numba threads, {res['threading_layer']}, {res['cores']} cores"
    log(f"every frame analysed in turn (process, batch), {w}x{h}, {res['frames']} frames back to "
        f"back ({threads}):")
    log(f"  median {res['every_frame_ms_median']:.2f} ms, p99 {res['every_frame_ms_p99']:.2f} ms "
        f"per frame; CPU {res['every_frame_cpu_ms_per_frame']:.2f} ms per frame (all threads)")
    log("  stages (median ms): " + _stages(res["every_frame_stages"]))
    mb = res["traffic_bytes"]
    log(f"  memory traffic per frame (read + written): normalise {mb['normalise'] / 1e6:.1f} MB, "
        f"composite {mb['composite'] / 1e6:.1f} MB, analysis full-frame passes "
        f"{mb['analysis_grid'] / 1e6:.1f} MB; np.copyto moving the first two "
        f"({res['traffic_pixel_passes_mb']:.1f} MB) took {res['memcpy_floor_ms']:.2f} ms in this "
        f"run: normalise + composite are {res['pixel_passes_to_floor']}x that floor")
    if "reuse_on" in res:
        on, off = res["reuse_on"], res["reuse_off"]
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(on["search_reasons"].items()))
        log(f"  rims re-measured where the motion puts them (segment.reuse_rims): analysis "
            f"{on['analysis_ms_median']:.2f} ms vs {off['analysis_ms_median']:.2f} ms without "
            f"(ratio {res['reuse_analysis_ratio']}), frame {on['ms_median']:.2f} vs "
            f"{off['ms_median']:.2f} ms (ratio {res['reuse_frame_ratio']}); full search on "
            f"{on['searched_fraction'] * 100:.0f} % of frames ({reasons or 'none'}), "
            f"{on['resnapped_rims']} grown rims re-snapped instead")
        log("  with reuse, stages (median ms): " + _stages(on["stages"]))
    log(f"  first frame {res['first_frame_ms']:.0f} ms after construction "
        f"({res['construct_ms']:.0f} ms, kernels warmed)")
    if rate:
        late = res["live_late_fraction"] * 100
        log(f"live, as the viewer runs it (analysis on its own thread), fed at {rate:g} fps, "
            f"per-pixel passes on {res['live_display_threads']} thread(s):")
        log(f"  median {res['live_ms_median']:.2f} ms, p99 {res['live_ms_p99']:.2f} ms per frame in "
            f"the display path ({late:.1f} % over the frame period); CPU "
            f"{res['live_cpu_ms_per_frame']:.2f} ms per frame (all threads)")
        log("  stages (median ms): " + _stages(res["live_stages"]))
        if res["live_analysis_ms_median"] is None:
            log("  rim analysis: none finished")
        else:
            log(f"  rim analysis: {res['live_analysed_fraction'] * 100:.0f} % of frames analysed, "
                f"{res['live_analysis_ms_median']:.1f} ms each (p99 {res['live_analysis_ms_p99']:.1f}; "
                f"at most {res['live_analyses_per_s']:g} per second), "
                f"rims shown {res['live_analysis_lag_frames_median']:g} frames late (median; "
                f"max {res['live_analysis_lag_frames_max']})")
    log(f"plain     {w}x{h}: median {res['plain_ms_per_frame_median']:.1f} ms, p99 "
        f"{res['plain_ms_per_frame_p99']:.1f} ms over {res['plain_frames']} frames "
        f"(CPU {res['plain_cpu_ms_per_frame']:.1f} ms)")
    log(f"speed-up  {res['speedup']}x (plain version / every frame analysed: the same work)")
    what = "display path" if res["mode"] == "live" else "every frame analysed"
    log(f"headline ({res['mode']}): {res['ms_per_frame_median']:.2f} ms median, "
        f"{res['ms_per_frame_p99']:.2f} ms p99 per frame, {what} {res['fps']} fps")
