"""`nirf-overlay process`: run the pipeline over a source, write metrics, masks, overlay video."""

from __future__ import annotations

import argparse


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


def run(args) -> int:
    import math

    from ..calibration import resolve_calibration
    from ..export import run_process
    from ..processing.pipeline import Pipeline
    from ..sources import default_sample, open_source
    from .common import calibration_request, settings_from_args
    from .source_args import has_source, spec_from_args

    settings = settings_from_args(args)
    start, end = args.range if args.range else (None, None)
    if not has_source(args):
        spec = default_sample()
        # (as before the restructuring: process reads the sample with the bit
        # depth the command line gives, None = from the data)
        spec.nir_bits = args.nir_bits
    else:
        spec = spec_from_args(args)
        spec.realtime = False  # process reads files as fast as it can
        if spec.phantom and end is not None:
            # render only what the range needs
            spec.options["frames"] = int(math.ceil(end * (spec.fps or 30.0))) + 1
    with open_source(spec) as source:
        calibration = resolve_calibration(calibration_request(args), source).calibration
        pipeline = Pipeline(settings, calibration)
        summary = run_process(source, pipeline, args.out, masks=args.masks,
                              video=not args.no_video, frame_range=args.range,
                              progress=not args.no_progress)
    mm = "mm" if pipeline.mm_per_px else "px (no mm-per-pixel calibration)"
    video = f"; video {summary['video']}" if summary["video"] else ""
    lost = f" ({summary['nir_lost']} with NIR lost)" if summary["nir_lost"] else ""
    print(f"process: {summary['frames']} frames{lost}, {summary['rims']} rims found "
          f"(in {summary['rim_frames']} frames), {summary['seconds']:.1f} s, "
          f"{summary['fps']:.1f} fps, sizes in {mm}{video} -> {summary['out_dir']}")
    return 0
