"""The source options every command that reads video shares, and the spec they make.

Argument parsing belongs to the command line, not to the core: this module
turns ``argparse`` options into a :class:`~nirf_overlay.sources.SourceSpec`,
which is all the core sees.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from ..sources import SourceSpec, kind_of
from .common import non_negative_count, positive_number


def size_arg(text: str) -> tuple[int, int]:
    """argparse type: ``WxH`` as ``(W, H)``; the phantom says which sizes it renders."""
    try:
        w, h = text.lower().split("x")
        w, h = int(w), int(h)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r}: expected WxH, e.g. 1920x1080")
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"size {text!r}: width and height must be at least 1 px")
    return w, h


def rect_arg(text: str) -> tuple[int, int, int, int]:
    """argparse type: ``X,Y,W,H`` in pixels (the checks against the frame come when it opens)."""
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected X,Y,W,H in whole pixels, e.g. 0,90,960,720")
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: x and y must be 0 or more, width and height "
                                         "at least 1 px")
    return x, y, w, h


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the source options every command that reads video shares."""
    g = parser.add_argument_group("source (one of; default: the bundled sample)")
    g.add_argument("source", nargs="?", help="recorded session directory")
    g.add_argument("--wl", metavar="X", help="white-light stream: file, image pattern, device, URL")
    g.add_argument("--nir", metavar="Y", help="NIR stream: file, image pattern, device, URL")
    g.add_argument("--combined", metavar="X", help="one stream carrying both views")
    g.add_argument("--layout", choices=("side-by-side", "top-bottom", "custom"),
                   help="where --combined carries each view (default: the --calibration "
                        "profile's layout, else side-by-side)")
    g.add_argument("--wl-rect", type=rect_arg, metavar="X,Y,W,H",
                   help="--layout custom: the white-light inset, combined-frame pixels")
    g.add_argument("--nir-rect", type=rect_arg, metavar="X,Y,W,H",
                   help="--layout custom: the NIR inset (may be larger: it is resized to the WL inset)")
    g.add_argument(
        "--nir-half", choices=("left", "right", "top", "bottom"),
        help="which half of --combined is NIR (default: right or bottom)",
    )
    g.add_argument("--nir-bits", type=int, choices=range(8, 17), metavar="{8..16}",
                   help="significant NIR bits if the stream does not say (default: from dtype)")
    g.add_argument("--phantom", action="store_true", help="the synthetic phantom procedure")
    g.add_argument("--seed", type=non_negative_count, default=0, help="phantom seed")
    g.add_argument("--size", type=size_arg, help="phantom size WxH (default 1280x720)")
    g.add_argument("--fps", type=positive_number, help="phantom or image-sequence frame rate (default 30)")
    g.add_argument("--realtime", action="store_true", help="pace files at their native frame rate")
    g.add_argument("--loop", action="store_true", help="loop files and sessions")
    g.add_argument("--pair-tolerance", type=positive_number, metavar="S",
                   help="live --wl/--nir: largest WL-NIR capture-time difference to pair, "
                        "seconds (default: half a frame period)")
    g.add_argument("--keep-paths", action="store_true",
                   help="write whole source paths into sessions, snapshots and stats "
                        "(default: file names only; folder names can carry patient names)")


#: the options whose dest is the SourceSpec field of the same name
_SPEC_OPTIONS = ("wl", "nir", "combined", "layout", "nir_half", "nir_bits", "phantom", "seed",
                 "size", "fps", "realtime", "loop", "pair_tolerance", "wl_rect", "nir_rect",
                 "keep_paths")


def spec_from_args(args: argparse.Namespace, **overrides) -> SourceSpec:
    """The :class:`SourceSpec` the source options name, with ``overrides`` set on it."""
    given = vars(args)
    spec = SourceSpec(session=args.source, **{name: given[name] for name in _SPEC_OPTIONS})
    return replace(spec, **overrides)


def has_source(args: argparse.Namespace) -> bool:
    """True when the command line names a source (else the command's default applies)."""
    return kind_of(spec_from_args(args)).name != "sample"
