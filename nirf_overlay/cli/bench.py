"""`nirf-overlay bench`: time the pipeline against a plain OpenCV/numpy version."""

from __future__ import annotations

import argparse


def _positive(text):
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number")
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be at least 1")
    return n


def add_parser(parser: argparse.ArgumentParser) -> None:
    from ..sources import add_source_arguments
    from .common import add_pipeline_arguments

    add_source_arguments(parser)
    add_pipeline_arguments(parser)
    g = parser.add_argument_group("bench")
    g.add_argument("--frames", type=_positive, default=100,
                   help="frames to time (default 100; the phantom renders a loop of up to "
                        "~768 MB of distinct frames and plays it back and forth)")
    g.add_argument("--plain-frames", type=_positive, default=10,
                   help="frames to time the plain version on (default 10; it is slow)")
    g.add_argument("--warmup", type=int, default=5, help="untimed frames first (default 5)")
    g.add_argument("--json", action="store_true", help="last line: one JSON object of the results")


def _has_source(args) -> bool:
    return bool(args.source or args.wl or args.nir or args.combined)


def run(args) -> int:
    import json
    import os
    import sys

    from ..bench import run_bench
    from ..calibration import calibration_from_args
    from ..errors import NirfError
    from ..settings import Settings
    from ..sources import open_source, spec_from_args

    settings = Settings.load(args.settings) if args.settings else Settings()
    if _has_source(args):
        spec = spec_from_args(args)
    else:
        # no source: the phantom, 1080p unless --size says otherwise
        spec = spec_from_args(args, phantom=True, size=args.size or (1920, 1080))
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
        calibration = calibration_from_args(args, size=source.info.size)
        if calibration is None:
            from .common import default_calibration

            calibration = default_calibration(source)
    if not pairs:
        raise NirfError(f"{spec.describe()}: no frames to time")
    res = run_bench(pairs, settings, calibration, warmup=max(0, args.warmup),
                    plain_frames=args.plain_frames)
    res["cores"] = os.cpu_count()
    res["source"] = spec.describe()
    w, h = res["size"]
    log(f"pipeline  {w}x{h}: median {res['ms_per_frame_median']:.2f} ms, p99 "
        f"{res['ms_per_frame_p99']:.2f} ms, {res['fps']} fps over {res['frames']} frames "
        f"({res['threads']} numba threads, {res['threading_layer']}, {res['cores']} cores)")
    log(f"  CPU time {res['cpu_ms_per_frame']:.2f} ms per frame (all threads; plain "
        f"{res['plain_cpu_ms_per_frame']:.1f} ms)")
    log("  stages (median ms): " + ", ".join(f"{k} {v:.2f}" for k, v in res["stages"].items()))
    log(f"  first frame {res['first_frame_ms']:.0f} ms after construction "
        f"({res['construct_ms']:.0f} ms, kernels warmed)")
    log(f"plain     {w}x{h}: median {res['plain_ms_per_frame_median']:.1f} ms, p99 "
        f"{res['plain_ms_per_frame_p99']:.1f} ms over {res['plain_frames']} frames")
    log(f"speed-up  {res['speedup']}x")
    if args.json:
        print(json.dumps(res))
    return 0
