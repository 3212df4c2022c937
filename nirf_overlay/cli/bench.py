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


def run(args) -> int:
    import json
    import os
    import sys

    from ..bench import run_bench
    from ..calibration import resolve_calibration
    from ..errors import NirfError
    from ..sources import open_source
    from .common import calibration_request, prepare_kernels, settings_from_args
    from .source_args import spec_from_args

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
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    log(f"bench: loading {n} frames from {spec.describe()} ...")
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
    res = run_bench(pairs, settings, calibration, warmup=max(0, args.warmup),
                    plain_frames=args.plain_frames, rate=rate,
                    headline="every-frame" if args.every_frame else "live")
    res["cores"] = os.cpu_count()
    res["source"] = spec.describe()
    threads = f"{res['threads']} numba threads, {res['threading_layer']}, {res['cores']} cores"
    log(f"every frame analysed in turn (process, batch), {w}x{h}, {res['frames']} frames back to "
        f"back ({threads}):")
    log(f"  median {res['every_frame_ms_median']:.2f} ms, p99 {res['every_frame_ms_p99']:.2f} ms "
        f"per frame; CPU {res['every_frame_cpu_ms_per_frame']:.2f} ms per frame (all threads)")
    log("  stages (median ms): " + _stages(res["every_frame_stages"]))
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
    if args.json:
        print(json.dumps(res))
    return 0
