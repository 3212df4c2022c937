"""The pipeline's carried state as one hash, for ``batch``'s chunk checks.

:func:`state_digest` feeds every piece of state a
:class:`~.pipeline.Pipeline` carries from frame to frame (the normaliser's
filter, the black level, the display levels, the analyzer's tracks and reuse
choices, the motion's key frame) into one SHA-1.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np


def state_digest(pipeline) -> str:
    """A hash of everything ``pipeline`` carries from one frame to the next.

    Two pipelines with the same digest give the same output for the same
    input from then on (``batch`` checks with it that a chunk's warm-up
    reached the state the previous chunk ended in).  Rim ids and track
    ages are left out: ids are renumbered when chunks are stitched, and
    ages change no output.  Buffers whose contents never carry over into
    an output (the analyzer's scratch and mask ring, the plane mask
    cache: plain objects) are not hashed.
    """
    h = hashlib.sha1()
    _hash_state(h, pipeline.normaliser, skip=("calibration", "raw_wl"))
    if pipeline.black_level is not None:
        h.update(pipeline.black_level.state_bytes())
    _hash_state(h, pipeline.display_levels)
    _hash_state(h, pipeline.analyzer, skip=("settings", "mm_per_px"))
    h.update(pipeline.analyzer.reuse.state_bytes())
    for t in pipeline.analyzer.tracker.tracks:
        h.update(f"track {t.centroid!r} {t.area_px!r} {t.missed};".encode())
    h.update(f"{pipeline.levels!r} {pipeline.threshold!r} {pipeline.noise_sigma!r}".encode())
    # the noise filter's weight follows the motion
    h.update(pipeline.motion.state_bytes())
    return h.hexdigest()


def _hash_state(h, obj, skip=()) -> None:
    """Feed ``obj``'s arrays, plain values and dataclasses (by name, sorted) into ``h``."""
    for name, v in sorted(vars(obj).items()):
        if name in skip:
            continue
        if isinstance(v, np.ndarray):
            h.update(name.encode())
            h.update(str(v.dtype).encode() + str(v.shape).encode())
            h.update(np.ascontiguousarray(v).tobytes())
        elif v is None or isinstance(v, (bool, int, float, str, tuple)):
            h.update(f"{name}={v!r};".encode())
        elif dataclasses.is_dataclass(v):
            h.update(f"{name}={v!r};".encode())

