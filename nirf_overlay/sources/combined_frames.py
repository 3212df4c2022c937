"""Whole frames of a ``--combined`` stream, for finding its layout (``calibrate layout``).

The combined source splits every frame into its WL and NIR views; finding
where those views are needs the frames whole.  A file or image sequence is
read from its start, a device or URL live, through the same readers and
capture as everywhere else (so a name means the same here).
"""

from __future__ import annotations

import numpy as np

from ..errors import SourceError
from ._cv import wl_from_frame
from .inputs import check_present, classify
from .live import open_live
from .readers import open_reader


def read_combined_frames(name: str, *, count: int = 8, seconds: float = 4.0, spec=None) -> list:
    """``count`` whole (H, W, 3) uint8 BGR frames spread over the first ``seconds``.

    Parameters
    ----------
    name : the ``--combined`` input (file, image pattern, device, URL)
    count : frames to return (fewer if the input is shorter)
    seconds : the span they are spread over (files: by their frame rate)
    spec : the SourceSpec for a live input's timeouts (None: the defaults)
    """
    kind = classify(name)
    if kind.live:
        from .spec import SourceSpec

        cap, frame0, props = open_live(kind, name, raw=False, spec=spec or SourceSpec(combined=name))
        fps = float(props["fps"] or 30.0)

        def read():
            ok, f = cap.read()
            return f if ok else None

        close = cap.release
        first = [frame0]
        length = None
    else:
        check_present(kind, name)
        reader = open_reader(kind, name)
        fps = reader.fps
        length = reader.frame_count

        def read():
            got = reader.read()
            return None if got is None else got[0]

        close = reader.close
        first = []
    span = max(1, int(round(seconds * fps)))
    if length:  # a short file: spread over all of it
        span = min(span, length)
    step = max(1, span // max(1, count))
    frames = []
    try:
        i = 0
        while len(frames) < count and i < span:
            f = first.pop() if first else read()
            if f is None:
                break
            if i % step == 0:
                frames.append(wl_from_frame(f, name))
            i += 1
    finally:
        close()
    if not frames:
        raise SourceError(f"{name}: no frame to find the layout in")
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise SourceError(f"{name}: the frame size changes ({sorted(shapes)}); record one format")
    return [np.ascontiguousarray(f) for f in frames]
