"""`nirf-overlay batch`: not built yet (see the open issues)."""

from ..errors import NirfError


def add_parser(parser):
    pass


def run(args):
    raise NirfError("batch: not built yet")
