"""The processing pipeline: FramePair -> normalised NIR -> rims, metrics -> composite.

Public entry point: :class:`Pipeline` (``pipeline.py``).  Per-pixel work is
in numba kernels (``kernels.py``); state (EMA buffers, display levels, rim
tracks) lives in the Pipeline object, never in module globals.
"""

from .result import FRAME_COLUMNS, RIM_COLUMNS, FrameResult, PlaneCheck, RimMeasurement

__all__ = ["FRAME_COLUMNS", "RIM_COLUMNS", "FrameResult", "PlaneCheck", "RimMeasurement"]
