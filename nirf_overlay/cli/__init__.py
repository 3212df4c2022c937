"""The ``nirf-overlay`` command.

Each subcommand lives in its own module here with two functions:
``add_parser(subparsers)`` and ``run(args) -> int``.  Modules are imported only
when their subcommand runs, so ``nirf-overlay process`` never loads Qt.

User mistakes raise :class:`~nirf_overlay.errors.NirfError`; ``main`` prints
them as one line (``nirf-overlay: error: <input>: <problem>``) and returns a
non-zero exit code.  Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from .. import __version__
from .. import shutdown
from ..errors import NirfError

# name -> (module, one-line help); order is the order --help lists them.
SUBCOMMANDS = {
    "view": ("view", "the OR viewer: live overlay on the laparoscopic view (default)"),
    "process": ("process", "run the pipeline over a source; write metrics, masks, overlay video"),
    "record": ("record", "record a source losslessly into a session directory"),
    "calibrate": ("calibrate", "build a calibration profile: dark, flat, register"),
    "bench": ("bench", "time the processing pipeline against a plain OpenCV/numpy version"),
    "batch": ("batch", "analyse many recorded sessions on a Dask cluster"),
    "make-sample": ("make_sample", "render phantom recordings (the bundled sample and larger ones)"),
    "info": ("info", "versions, numba cache, video backends, Qt screens: for a bug report"),
}


class _Parser(argparse.ArgumentParser):
    """An option mistake in one line, like every other user error (no usage block)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _join_dash_values(argv: list) -> list:
    """``--range -2:5`` as ``--range=-2:5``: a value that starts with a minus (a negative
    number, a range) reaches its option's check instead of argparse's "expected one argument"."""
    out = []
    for token in argv:
        prev = out[-1] if out else ""
        if (prev.startswith("--") and "=" not in prev and len(token) > 1 and token[0] == "-"
                and (token[1].isdigit() or token[1] in ".:"
                     or token[1:].lower() in ("inf", "infinity", "nan"))):
            out[-1] = f"{prev}={token}"
        else:
            out.append(token)
    return out


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command's parser; with ``only``, just that subcommand's options are built.

    Building every subcommand imports every command's modules (the recorder,
    calibration, Dask's options ...): about a second of a first start that
    the viewer does not need before its window opens.
    """
    parser = _Parser(
        prog="nirf-overlay",
        description="Real-time ICG near-infrared fluorescence overlay for liver surgery. "
        "With no subcommand, opens the viewer on the bundled sample.",
    )
    parser.add_argument("--version", action="version", version=f"nirf-overlay {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if only is None or name == only:
            mod = importlib.import_module(f"{__name__}.{module}")
            mod.add_parser(p)
            p.set_defaults(_module=mod)
    return parser


def _quiet_openmp_workers() -> None:
    """numba's OpenMP worker threads (libgomp) spin for ~300 000 pause loops
    (about 7 ms here) after every parallel pass before they sleep.  In the
    live viewer that spinning takes the core the rim-analysis thread needs;
    10 000 still bridges passes that follow each other directly.  Measured on
    the 1080p60 phantom, 2 cores: display path median 5.3 -> 4.4 ms, p99 8-57
    -> 5-9 ms; every-frame timing unchanged.  libgomp reads it when numba
    first loads it, so this runs before any kernel; a user's own value wins.
    """
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")


class _StderrLines(logging.Handler):
    """``nirf-overlay: warning: <message>`` on the current ``sys.stderr`` (``error:`` for
    errors, no level for information), one line per record."""

    def emit(self, record: logging.LogRecord) -> None:
        level = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        try:
            print(f"nirf-overlay: {level}{record.getMessage()}", file=sys.stderr, flush=True)
        except Exception:
            self.handleError(record)


_LOG_HANDLER = _StderrLines()


def _configure_logging() -> None:
    """The package's log lines (NIR lost and back, a stream reconnecting, a chunk re-run)
    on stderr: the one place the command line configures logging."""
    logger = logging.getLogger("nirf_overlay")
    if _LOG_HANDLER not in logger.handlers:
        logger.addHandler(_LOG_HANDLER)
    logger.setLevel(logging.INFO)


def main(argv=None) -> int:
    _quiet_openmp_workers()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in SUBCOMMANDS and argv[0] not in ("-h", "--help", "--version")):
        argv = ["view", *argv]
    parser = build_parser(argv[0] if argv[0] in SUBCOMMANDS else None)
    args = parser.parse_args(_join_dash_values(argv))
    shutdown.install()
    _configure_logging()
    try:
        return int(args._module.run(args) or 0)
    except NirfError as e:
        print(f"nirf-overlay: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:  # SIGINT, SIGTERM, SIGHUP (shutdown.Stopped)
        print(f"nirf-overlay: stopped by {shutdown.signal_name(e)}; the outputs are complete up "
              "to the last frame handled", file=sys.stderr)
        return shutdown.exit_code(e)
    except BrokenPipeError:
        return 1
