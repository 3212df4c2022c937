"""Every numeric option of every subcommand, walked from the argparse parsers themselves.

Each option whose ``type`` makes a number (or numbers: a size, a rectangle, a range, a
board) gets NaN, inf, -inf, zero and a negative.  Each is refused by the command line
as ``nirf_overlay.cli.main`` parses it, in one line naming the option, exit 2, before
anything runs (the walk stops there), unless the value means something
(:data:`MEANINGFUL`, each with its meaning; the README's "Faults" table lists them).  An option added later is walked without editing
this file; one whose type is not a number and not in :data:`COMPOSITE` fails the walk
until it is classified.
"""

from __future__ import annotations

import argparse

import pytest

from nirf_overlay.cli import SUBCOMMANDS, _join_dash_values, build_parser

VALUES = ("nan", "inf", "-inf", "0", "-30")

# types that take several numbers: how a value goes into each of their numbers
COMPOSITE = {
    "size_arg": ("{v}x64", "96x{v}"),
    "rect_arg": ("{v},0,8,8", "0,0,{v},8"),
    "_range": ("{v}:5", "0:{v}"),
    "_board": ("{v}x6", "9x{v}"),
}

# (option, argument) -> what it means; accepted by every subcommand that has the option
MEANINGFUL = {
    ("--seed", "0"): "seed 0, the first phantom procedure",
    ("--screen", "0"): "the primary screen",
    ("--warmup", "0"): "no untimed warm-up (bench: frames; view: seconds)",
    ("--min-free-mb", "0"): "no free-space floor",
    ("--crf", "0"): "lossless H.264",
    ("--gain-step", "0"): "the auto-gain step at the start",
    ("--gain-step", "-30"): "no auto-gain step (its help says so)",
    ("--range", "0:5"): "from the start to 5 s",
    ("--wl-rect", "0,0,8,8"): "an inset at the left edge",
    ("--nir-rect", "0,0,8,8"): "an inset at the left edge",
}

# what each subcommand needs besides the walked option (OUT: a path that must stay absent)
REQUIRED = {
    "view": [], "bench": [], "make-sample": ["--out", "OUT"], "info": [],
    "process": ["--out", "OUT"], "record": ["--out", "OUT"],
    "batch": ["S1", "--out", "OUT"],
    "calibrate dark": ["--out", "OUT/p.json"], "calibrate flat": ["--out", "OUT/p.json"],
    "calibrate register": ["--out", "OUT/p.json"],
    "calibrate layout": ["--combined", "x.mp4", "--out", "OUT/p.json"],
    "calibrate transfer": ["--patches", "w.csv", "--out", "OUT/p.json"],
}


def _parse(argv: list) -> argparse.Namespace:
    """The command line as :func:`nirf_overlay.cli.main` reads it, before it runs anything."""
    return build_parser(argv[0]).parse_args(_join_dash_values(argv))


def _typed_options():
    """(command words, option, its type) for every typed option of every subcommand."""
    found = []

    def walk(parser, words):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*words, name])
            elif action.type is not None and action.option_strings:
                found.append((words, action.option_strings[-1], action.type))

    walk(build_parser(), [])
    return found


def _arguments(option_type) -> list[str]:
    """The walked arguments for an option of ``option_type``."""
    name = option_type.__name__  # int, float or one of the cli's type functions
    if name in COMPOSITE:
        return [t.format(v=v) for t in COMPOSITE[name] for v in VALUES]
    try:
        number = option_type("1")
    except (argparse.ArgumentTypeError, ValueError, TypeError):
        number = None
    assert isinstance(number, (int, float)) and not isinstance(number, bool), (
        f"option type {name} takes no plain number: add it to COMPOSITE (with where the "
        f"number goes) or give the option a non-numeric meaning")
    return list(VALUES)


CASES = [(" ".join(words), option, arg) for words, option, option_type in _typed_options()
         for arg in _arguments(option_type)]


def test_the_walk_covers_every_subcommand_that_takes_numbers():
    walked = {command.split()[0] for command, _, _ in CASES}
    assert walked >= set(SUBCOMMANDS) - {"info"}, walked
    assert {c for c, _, _ in CASES} <= set(REQUIRED), "a new subcommand: say what it requires"
    # every meaningful value is one the walk tries
    assert set(MEANINGFUL) <= {(o, a) for _, o, a in CASES}


@pytest.mark.parametrize("command,option,arg", CASES,
                         ids=[f"{c}:{o}={a}" for c, o, a in CASES])
def test_a_numeric_option_refuses_nan_inf_zero_negative_or_means_something(
        tmp_path, capsys, command, option, arg):
    out = tmp_path / "o"
    argv = [*command.split(), *(a.replace("OUT", str(out)) for a in REQUIRED[command]),
            option, arg]
    if (option, arg) in MEANINGFUL:
        args = _parse(argv)
        assert vars(args)[option.lstrip("-").replace("-", "_")] is not None
        return
    with pytest.raises(SystemExit) as e:
        _parse(argv)  # (a value wrongly accepted fails here instead of running the command)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2, err
    assert "\n" not in err and option in err and "Traceback" not in err, err
    assert not out.exists()
