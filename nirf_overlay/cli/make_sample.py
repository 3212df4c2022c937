"""`nirf-overlay make-sample`: not built yet (see the open issues)."""

from ..errors import NirfError


def add_parser(parser):
    pass


def run(args):
    raise NirfError("make-sample: not built yet")
