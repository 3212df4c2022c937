"""`nirf-overlay view`: the OR viewer (the default command).

With no source it opens the bundled sample, looping, with its calibration
profile.  ``--exit-after S --stats-json F`` runs the real window for S seconds
(offscreen when ``QT_QPA_PLATFORM=offscreen``) and writes what it measured.
"""

from __future__ import annotations

import argparse

from .common import non_negative_count, non_negative_number, positive_number


def add_parser(parser: argparse.ArgumentParser) -> None:
    from .source_args import add_source_arguments
    from .common import add_pipeline_arguments

    add_source_arguments(parser)
    add_pipeline_arguments(parser)
    g = parser.add_argument_group("viewer")
    g.add_argument("--fullscreen", action="store_true", help="start full screen (F11 toggles)")
    g.add_argument("--screen", type=non_negative_count, metavar="N",
                   help="show on screen N (0 = primary); implies --fullscreen")
    from ..settings import MODES

    g.add_argument("--mode", choices=MODES, help="display mode to start in (keys 1-6 switch)")
    g.add_argument("--snapshots", metavar="DIR", help="where S saves snapshots "
                                                     "(default ~/nirf-overlay/snapshots)")
    g.add_argument("--recordings", metavar="DIR", help="where R records sessions "
                                                      "(default ~/nirf-overlay/recordings)")
    way = g.add_mutually_exclusive_group()
    way.add_argument("--sync-analysis", action="store_true",
                     help="always analyse rims in the display path, every frame before it is "
                          "shown, even when that cannot keep up (default: so while it keeps up, "
                          "else on their own thread by itself; the HUD says which)")
    way.add_argument("--async-analysis", action="store_true",
                     help="always analyse rims on their own thread: the picture never waits, "
                          "outlines a frame or two behind the overlay")
    g.add_argument("--exit-after", type=positive_number, metavar="S",
                   help="close the window after S seconds (tests, benchmarks)")
    g.add_argument("--stats-json", metavar="F",
                   help="with --exit-after: write frames displayed, dropped fraction, latency "
                        "median/p99 (ms), fps and size as JSON")
    g.add_argument("--warmup", type=non_negative_number, default=None, metavar="S",
                   help="seconds after the first frame not counted in --stats-json "
                        "(default: 1 s, or a quarter of --exit-after if shorter)")


def _own_nice():
    import os
    import threading

    try:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    except (OSError, AttributeError):
        return None


def _raise_gui_priority(base, step: int = 10) -> bool:
    """Give the GUI thread (light: a paint of ~2 ms a frame) precedence over processing.

    Only this thread: the engine's threads stay at ``base``.  On a 2-core machine
    the paint otherwise waits behind the pipeline's threads for the CPU.  Needs the
    right to raise priority (root or CAP_SYS_NICE); without it nothing changes.
    """
    import os
    import threading

    if base is None:
        return False
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), max(-20, base - step))
        return True
    except (OSError, AttributeError):
        return False


def _viewer_spec(args):
    """The spec to show and a note for the user ("" when none)."""
    from ..sources import default_sample
    from ..sources.sample import sample_available
    from .source_args import has_source, spec_from_args

    spec = spec_from_args(args)
    if not has_source(args):
        if not sample_available():  # e.g. a wheel built from a tree without sample_videos/
            return (spec_from_args(args, phantom=True),
                    "the bundled sample is not installed here: showing the phantom procedure "
                    "(open a recording or a camera with Ctrl+O)")
        sample = default_sample()
        sample.loop = True  # the viewer shows the sample round and round
        return sample, ""
    return spec, ""


def run(args) -> int:
    import json
    import sys
    from pathlib import Path

    from ..engine import open_engine, set_worker_nice
    from ..errors import NirfError
    from .common import calibration_request, check_output_file, settings_from_args
    from .common import warn_display_values

    if args.stats_json and not args.exit_after:
        raise NirfError("--stats-json: needs --exit-after S (the seconds to measure)")
    check_output_file(args.stats_json, "--stats-json")
    spec, note = _viewer_spec(args)
    if note:
        print(f"nirf-overlay: {note}", file=sys.stderr)
    settings = settings_from_args(args)
    if args.mode:
        settings.set("display.mode", args.mode)
    factory = None
    if args.sync_analysis or args.async_analysis:
        from functools import partial

        from ..processing.pipeline import Pipeline

        # sync: Pipeline(settings, calibration), the analysis on the worker thread
        factory = partial(Pipeline, async_analysis=True) if args.async_analysis else Pipeline
    # the window opens at once; on the first start after installing the engine
    # compiles the kernels behind it (white light meanwhile, marked, with progress)
    engine = open_engine(spec, settings, calibration_request(args), pipeline_factory=factory)
    warn_display_values(engine.info, engine.calibration, "view")

    from ..gui.app import install_error_hook, make_app
    from ..gui.main_window import MainWindow
    from ..gui.viewer_stats import ViewerStats

    app = make_app()
    # The worker holds the GIL while the pipeline runs Python code; a 1 ms switch
    # interval (default 5 ms) bounds how long the GUI thread waits to paint.
    sys.setswitchinterval(0.001)
    warmup = args.warmup
    if warmup is None:
        warmup = min(1.0, args.exit_after / 4) if args.exit_after else 0.0
    stats = ViewerStats(warmup_s=warmup)
    base_nice = _own_nice()
    set_worker_nice(base_nice)  # threads started later keep the normal priority
    try:
        window = MainWindow(engine, spec=spec, snapshot_dir=args.snapshots,
                            recording_dir=args.recordings, stats=stats)
    except BaseException:
        engine.stop()
        raise
    _raise_gui_priority(base_nice)  # after the worker started: it keeps its own
    install_error_hook(lambda text: window.notify(text, error=True, seconds=8))
    try:
        if args.fullscreen or args.screen is not None:
            window.show()
            window.go_fullscreen(args.screen)
        else:
            window.show()
    except NirfError:
        window.close()
        raise
    if note:
        window.notify(note, seconds=10)

    from ..gui.app import quit_on_stop_signals

    stopped = quit_on_stop_signals(app)
    result = {}
    if args.exit_after:
        from ..gui.app import call_later

        def finish():
            try:  # whatever the summary meets, --exit-after ends the viewer
                result.update(window.stats.summary(window.engine))
            finally:
                window.close()
                app.quit()

        call_later(args.exit_after, finish)
    code = app.exec_()
    if args.stats_json and not result:  # closed before --exit-after: what it measured so far
        result.update(window.stats.summary(window.engine))
    if window.isVisible():
        window.close()
    if args.stats_json:
        Path(args.stats_json).write_text(json.dumps(result, indent=2) + "\n")
    if stopped:
        from ..shutdown import Stopped

        raise Stopped(stopped["signum"])
    return int(code)
