"""`nirf-overlay calibrate dark|flat|register`: build or update a calibration profile.

Each step reads frames from a source, builds its entry and writes it into
``--out PROFILE.json`` (created, or updated keeping the other entries):

- ``dark``: mean of N light-off NIR frames plus a hot-pixel map.
- ``flat``: N frames of a uniform fluorescent target; dark-subtracted with
  the profile's dark (or the target's own minimum), smoothed, mean 1.
- ``register``: a checkerboard seen in both channels in several poses gives
  the WL-to-NIR homography and, with ``--square-mm``, mm per WL pixel.

``dark`` and ``flat`` need only ``--nir``.

- ``layout``: a tower's combined output: finds its white-light and NIR insets
  (and the text inside them) in a few frames, writes ``layout`` and
  ``ignore_rects`` and a preview PNG with the rectangles drawn; where it is
  unsure it says so and names the source options to give instead.
- ``transfer``: a target of known relative brightness (an ND step wedge over a
  uniform fluorescent sheet) seen through the tower: the curve through its
  patches' display values, written as ``P_transfer.csv`` beside the profile
  and ``nir_transfer: lut:P_transfer.csv`` in it (:mod:`~nirf_overlay.calibration.transfer_fit`).
"""

from __future__ import annotations

import argparse
import sys

from ..sources.nir_only import iter_captures, open_calibration_input
from ..calibration.model import CalibrationOptionError, OptionWarning
from ..calibration.photometric import build_dark, build_flat
from ..calibration.profile import save_profile
from ..calibration.registration import MAX_RMS_PX, Charuco, build_registration
from ..calibration.steps import add_dark, add_flat, add_layout, add_registration, start_profile
from ..errors import CalibrationError
from .common import check_output_file, positive_number
from .source_args import add_source_arguments, spec_from_args


def _board(text: str) -> tuple[int, int]:
    try:
        cols, rows = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"board {text!r}: expected COLSxROWS inner corners, e.g. 9x6")
    if not (2 <= cols <= 50 and 2 <= rows <= 50):
        raise argparse.ArgumentTypeError(f"board {text!r}: each count must be 2..50 inner corners")
    return cols, rows


def _count(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not a whole number")
    if not (1 <= v <= 100000):
        raise argparse.ArgumentTypeError(f"{text!r}: must be 1..100000")
    return v


def _profile_options(g, frames: int, frames_help: str, out_help: str = "") -> None:
    """``--out``, ``--calibration`` and ``--frames``: every step's profile and frame count."""
    g.add_argument("--out", required=True, metavar="P.json",
                   help="profile to create or update (its other entries are kept)" + out_help)
    g.add_argument("--calibration", metavar="PROFILE",
                   help="start from this profile instead of --out's current contents")
    g.add_argument("--frames", type=_count, default=frames, metavar="N", help=frames_help)


def add_parser(parser: argparse.ArgumentParser) -> None:
    steps = parser.add_subparsers(dest="step", metavar="STEP", required=True)
    specs = {
        "dark": ("mean of N light-off NIR frames plus a hot-pixel map", 32),
        "flat": ("flat field from N frames of a uniform fluorescent target", 16),
        "register": ("WL-to-NIR homography and mm per pixel from a checkerboard in several poses", 300),
    }
    for name, (help_text, frames) in specs.items():
        p = steps.add_parser(name, help=help_text, description=help_text)
        add_source_arguments(p)
        g = p.add_argument_group("profile")
        _profile_options(g, frames, f"frames to use (default {frames})")
        g.add_argument("--system", help="system name stored in the profile")
        g.add_argument("--notes", help="free text stored in the profile")
        if name == "flat":
            g.add_argument("--smooth-px", type=positive_number, metavar="S",
                           help="Gaussian smoothing sigma in pixels (default 1%% of the larger side)")
            g.add_argument("--exposure-ms", type=positive_number, metavar="T",
                           help="exposure the flat is taken at (default: what the source reports)")
            g.add_argument("--gain", type=positive_number, help="gain the flat is taken at (default: the source's)")
        if name == "register":
            g.add_argument("--board", type=_board, default=(9, 6), metavar="COLSxROWS",
                           help="checkerboard inner corners (default 9x6)")
            g.add_argument("--charuco", action="store_true",
                           help="the board is ChArUco (markers in the white squares): corners "
                                "pair by id and a partly visible board still counts")
            g.add_argument("--dictionary", default="DICT_5X5_100",
                           help="ChArUco marker dictionary, an OpenCV name (default DICT_5X5_100)")
            g.add_argument("--marker-ratio", type=positive_number, default=0.75, metavar="R",
                           help="ChArUco marker side over square side (default 0.75)")
            g.add_argument("--square-mm", type=positive_number, metavar="S",
                           help="side of one square in mm; gives mm per pixel from the first pose")
            g.add_argument("--max-rms", type=positive_number, default=MAX_RMS_PX, metavar="PX",
                           help="refuse above this RMS reprojection error "
                                f"(default {MAX_RMS_PX} NIR px)")
            g.add_argument("--min-poses", type=_count, default=3, metavar="K",
                           help="distinct board poses required (default 3)")
            g.add_argument("--working-distance-mm", type=positive_number, metavar="D",
                           help="scope-to-board distance of the first pose, stored with mm per pixel")

    help_text = "find a tower's white-light and NIR insets in its combined output"
    p = steps.add_parser("layout", help=help_text, description=help_text)
    p.add_argument("--combined", required=True, metavar="X",
                   help="the tower's output: file, image pattern, device, URL")
    _profile_options(p, 8, "frames to look at (default 8), spread over --seconds")
    p.add_argument("--seconds", type=positive_number, default=4.0, metavar="S",
                   help="span of the recording they are spread over (default 4)")
    p.add_argument("--preview", metavar="PNG",
                   help="where the preview goes (default: beside --out, P_layout.png)")

    help_text = ("a tower's NIR transfer curve from a target of known relative brightness "
                 "(an ND step wedge over a uniform fluorescent sheet)")
    p = steps.add_parser("transfer", help=help_text, description=help_text)
    add_source_arguments(p)
    p.add_argument("--patches", required=True, metavar="W.csv",
                   help="rows x,y,w,h,relative: each patch (NIR pixels; for --combined, "
                        "white-light-inset pixels) and its known relative brightness")
    _profile_options(p, 16, "frames of the still target to use (default 16)",
                     "; its layout is used for --combined when no layout option is given; the "
                     "curve goes beside it, P_transfer.csv")


#: the flag that sets each builder option a refusal can name
#: (:attr:`~nirf_overlay.calibration.CalibrationOptionError.option`)
OPTION_FLAGS = {
    "board": "--board", "square_mm": "--square-mm", "max_rms_px": "--max-rms",
    "min_poses": "--min-poses", "dictionary": "--dictionary", "marker_ratio": "--marker-ratio",
    "nir_bits": "--nir-bits", "patches": "--patches", "frames": "--frames",
}


def run(args) -> int:
    """Build the step's entry and write the profile; a refusal an option fixes names its flag."""
    try:
        return _run(args)
    except CalibrationOptionError as e:  # every option a refusal names has a flag (tested)
        raise CalibrationError(f"{e}; see {OPTION_FLAGS[e.option]}") from None


def _run(args) -> int:
    # before any frame is read (minutes of a user's capture), not when the profile is saved
    # (which makes the profile's folder: a missing one is fine when it can be made)
    check_output_file(args.out, "--out", creates_folders=True)
    if args.step == "layout":
        return _layout(args)
    if args.step == "transfer":
        return _transfer(args)
    what = f"calibrate {args.step}"
    charuco = None
    if args.step == "register" and args.charuco:
        charuco = Charuco(board=args.board, marker_ratio=args.marker_ratio, dictionary=args.dictionary)
        charuco.cv_board()  # a bad dictionary or ratio is refused before the source opens
    inp = open_calibration_input(spec_from_args(args), need_wl=args.step == "register", what=what)
    with inp:
        cal = start_profile(args.out, args.calibration, size=inp.size)
        if args.system is not None:
            cal.system = args.system
        if args.notes is not None:
            cal.notes = args.notes
        frames = iter_captures(inp, args.frames, what=what)
        if args.step == "dark":
            res = _dark(cal, frames, inp.nir_bits)
        elif args.step == "flat":
            res = _flat(cal, frames, inp.nir_bits, args)
        else:
            res = _register(cal, frames, args, charuco)
    for w in res.warnings:
        flag = f"; see {OPTION_FLAGS[w.option]}" if isinstance(w, OptionWarning) else ""
        print(f"nirf-overlay: warning: {w}{flag}", file=sys.stderr)
    save_profile(cal, args.out)
    print(res.summary())
    print(f"wrote {args.out}")
    return 0


def _dark(cal, frames, nir_bits):
    res = build_dark((c.nir for c in frames), nir_bits=nir_bits)
    add_dark(cal, res)
    return res


def _flat(cal, frames, nir_bits, args):
    """The flat, taken at the exposure and gain given, else those of its first frame."""
    first = {}

    def nir_frames():
        for c in frames:
            first.setdefault("exposure_ms", c.exposure_ms)
            first.setdefault("gain", c.gain)
            yield c.nir

    res = build_flat(nir_frames(), nir_bits=nir_bits, dark=cal.dark, hot_pixels=cal.hot_pixels,
                     smooth_sigma_px=args.smooth_px)
    exposure = args.exposure_ms if args.exposure_ms is not None else first.get("exposure_ms")
    gain = args.gain if args.gain is not None else first.get("gain")
    add_flat(cal, res, exposure_ms=exposure, gain=gain)
    return res


def _register(cal, frames, args, charuco):
    res = build_registration(((c.wl, c.nir) for c in frames), board=args.board,
                             square_mm=args.square_mm, max_rms_px=args.max_rms,
                             min_poses=args.min_poses, charuco=charuco)
    add_registration(cal, res, working_distance_mm=args.working_distance_mm)
    return res


def _layout(args) -> int:
    """Find the insets; print them, write the preview, then the profile (or say what to give)."""
    import os

    import cv2

    from ..calibration.layout_detect import detect_layout, draw_preview
    from ..sources.combined_frames import read_combined_frames

    preview = args.preview or os.path.splitext(args.out)[0] + "_layout.png"
    check_output_file(preview, "--preview", creates_folders=True)
    frames = read_combined_frames(args.combined, count=args.frames, seconds=args.seconds)
    res = detect_layout(frames)
    print(res.summary())
    os.makedirs(os.path.dirname(os.path.abspath(preview)), exist_ok=True)  # (checked above)
    if not cv2.imwrite(preview, draw_preview(frames[0], res)):
        raise CalibrationError(f"{preview}: cannot write the preview PNG")
    print(f"wrote {preview}")
    if not res.ok:
        raise CalibrationError(
            f"calibrate layout: {args.combined}: unsure ({'; '.join(res.unsure)}); look at "
            f"{preview} and give the layout instead: {res.custom_options()}")
    _write_layout(args, res)
    print(f"wrote {args.out}; use it with --combined {args.combined} --calibration {args.out}, "
          f"or give {res.custom_options()}")
    return 0


def _write_layout(args, res) -> None:
    """``layout`` and ``ignore_rects`` into the profile (its other entries kept)."""
    cal = start_profile(args.out, args.calibration, size=res.wl_rect[2:])
    add_layout(cal, res.wl_rect, res.nir_rect, res.ignore_rects)
    save_profile(cal, args.out)


def _transfer(args) -> int:
    """Measure the patches, fit the curve, write the LUT beside the profile and name it there."""
    import os
    from dataclasses import replace

    from ..calibration.transfer import parse_transfer, write_lut
    from ..calibration.transfer_fit import fit_transfer, measure_patches, read_patches

    what = "calibrate transfer"
    patches = read_patches(args.patches)
    spec = spec_from_args(args)
    layout = start_profile(args.out, args.calibration).layout
    if spec.combined and layout is not None and spec.layout is None and spec.nir_half is None \
            and spec.wl_rect is None and spec.nir_rect is None:  # the tower's profile knows it
        spec = replace(spec, layout="custom", wl_rect=layout.wl_rect, nir_rect=layout.nir_rect)
    inp = open_calibration_input(spec, need_wl=False, what=what)
    with inp:
        cal = start_profile(args.out, args.calibration, size=inp.size)
        captures = iter_captures(inp, args.frames, what=what)
        values = measure_patches((c.nir for c in captures), patches, inp.nir_bits)
    fit = fit_transfer(values, patches)
    lut = os.path.splitext(args.out)[0] + "_transfer.csv"
    os.makedirs(os.path.dirname(os.path.abspath(lut)), exist_ok=True)
    write_lut(lut, fit.table)
    cal.nir_transfer = parse_transfer(f"lut:{os.path.abspath(lut)}", what=what)
    save_profile(cal, args.out)
    print(fit.summary())
    print(f"wrote {lut} and {args.out} (nir_transfer lut:{os.path.basename(lut)})")
    return 0
