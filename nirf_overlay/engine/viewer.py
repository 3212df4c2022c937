"""Opening a source for the viewer: the spec as the viewer reads it, the calibration, the engine."""

from __future__ import annotations

import copy
from typing import Callable, Optional

from .runner import Engine


def viewer_spec(spec):
    """The spec as the viewer opens it: live-like pacing for every source.

    The phantom paces itself (``realtime``: newest pair wins, like a camera);
    files and sessions are read unpaced and the engine paces them at their
    native rate, so replay speed, pause and step act in one place.
    """
    spec = copy.copy(spec)
    spec.realtime = bool(spec.phantom)
    return spec


def open_engine(spec, settings=None, request=None, *, loop: Optional[bool] = None,
                pipeline_factory: Optional[Callable] = None) -> Engine:
    """Open ``spec`` for viewing and build an (unstarted) :class:`Engine`.

    ``request`` (a :class:`~nirf_overlay.calibration.CalibrationRequest`)
    says what calibration the user asked for;
    :func:`~nirf_overlay.calibration.resolve_calibration` decides what
    applies.  A calibration the user chose for another frame size is refused
    (:class:`~nirf_overlay.errors.CalibrationError`) and the source closed;
    ``Engine.calibration_note`` carries any remark for the user.  The
    engine prepares the kernels behind the window when they are not ready yet
    (``prepare=True``: the white light plays meanwhile, marked).
    """
    from ..calibration import resolve_calibration
    from ..sources import open_source

    spec = viewer_spec(spec)
    source = open_source(spec)
    try:
        resolved = resolve_calibration(request, source)
        engine = Engine(source, settings, resolved.calibration,
                        loop=spec.loop if loop is None else loop,
                        pipeline_factory=pipeline_factory, prepare=True, keep_clock=True)
        engine.calibration_note = resolved.note
        return engine
    except BaseException:
        source.close()
        raise
