"""`nirf-overlay process`: not built yet (see the open issues)."""

from ..errors import NirfError


def add_parser(parser):
    pass


def run(args):
    raise NirfError("process: not built yet")
