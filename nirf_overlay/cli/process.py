"""`nirf-overlay process`: run the pipeline over a source, write metrics, masks, overlay video."""

from __future__ import annotations

import argparse
import math
import time


def _range(text: str):
    """``START:END`` in seconds; either side may be empty."""
    if ":" not in text:
        raise argparse.ArgumentTypeError(f"{text!r}: expected START:END in seconds, e.g. 2:10.5")
    a, b = text.split(":", 1)
    try:
        start = float(a) if a.strip() else None
        end = float(b) if b.strip() else None
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: START and END must be numbers of seconds")
    if any(t is not None and not math.isfinite(t) for t in (start, end)):
        raise argparse.ArgumentTypeError(f"{text!r}: START and END must be finite numbers of seconds")
    if (start is not None and start < 0) or (end is not None and end <= 0):
        raise argparse.ArgumentTypeError(f"{text!r}: times must be positive")
    if start is not None and end is not None and end <= start:
        raise argparse.ArgumentTypeError(f"{text!r}: END must be after START")
    return start, end


def add_parser(parser: argparse.ArgumentParser) -> None:
    from .source_args import add_source_arguments
    from .common import add_pipeline_arguments

    add_source_arguments(parser)
    add_pipeline_arguments(parser)
    g = parser.add_argument_group("output")
    g.add_argument("--out", required=True, metavar="DIR", help="output directory")
    g.add_argument("--masks", action="store_true", help="write masks/NNNNNN.png (rim mask, 0/255)")
    g.add_argument("--no-video", action="store_true", help="do not write overlay.mp4")
    g.add_argument("--range", type=_range, metavar="START:END",
                   help="process only this time range, seconds (either side may be empty)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def _spec(args, end_s):
    from ..sources import default_sample
    from .source_args import has_source, spec_from_args

    if not has_source(args):
        spec = default_sample()
        # (as before the restructuring: process reads the sample with the bit
        # depth the command line gives, None = from the data)
        spec.nir_bits = args.nir_bits
        return spec
    spec = spec_from_args(args)
    spec.realtime = False  # process reads files as fast as it can
    if spec.phantom and end_s is not None:
        # render only what the range needs
        spec.options["frames"] = int(math.ceil(end_s * (spec.fps or 30.0))) + 1
    return spec


def run(args) -> int:
    from ..calibration import resolve_calibration
    from ..engine import Span, recorded_plane_listeners, run_frames
    from ..export import OutputDir
    from ..outputs import check_new_output_dir
    from ..processing.pipeline import Pipeline
    from ..sources import open_source
    from .common import (calibration_request, prepare_kernels, progress_bars, settings_from_args,
                         warn_display_values)

    settings = settings_from_args(args)
    span = Span(*args.range) if args.range else Span()
    with open_source(_spec(args, span.end_s)) as source:
        info = source.info
        calibration = resolve_calibration(calibration_request(args), source).calibration
        warn_display_values(info, calibration, "process")
        check_new_output_dir(args.out)  # before the kernels compile (a minute, the first time)
        prepare_kernels()  # one progress line when they compile (first run after installing)
        pipeline = Pipeline(settings, calibration)
        span.check(info, label="--range")  # before anything is written
        t0 = time.perf_counter()
        with OutputDir(args.out, masks=args.masks, video=not args.no_video,
                       fps=info.fps or 30.0) as out:
            # a session's recorded plane in force where it was live (unless --settings has one)
            listeners = [*recorded_plane_listeners(source, pipeline, settings), out,
                         *progress_bars(span.total(info), not args.no_progress)]
            run_frames(source, pipeline, listeners, span=span)
        seconds = time.perf_counter() - t0
    s = out.summary()
    mm = "mm" if pipeline.mm_per_px else "px (no mm-per-pixel calibration)"
    video = f"; video {s['video']}" if s["video"] else ""
    lost = f" ({s['nir_lost']} with NIR lost)" if s["nir_lost"] else ""
    fps = s["frames"] / seconds if seconds > 0 else 0.0
    print(f"process: {s['frames']} frames{lost}, {s['rims']} rims found "
          f"(in {s['rim_frames']} frames), {seconds:.1f} s, "
          f"{fps:.1f} fps, sizes in {mm}{video} -> {s['out_dir']}")
    return 0
