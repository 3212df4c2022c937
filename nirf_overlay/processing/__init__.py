"""The processing pipeline: FramePair -> normalised NIR -> rims, metrics -> composite.

Public entry point: :class:`Pipeline` (``pipeline.py``).  Per-pixel work is
in private numba kernels (``_kernels/``, one module per consumer); state (EMA buffers, display levels, rim
tracks) lives in the Pipeline object, never in module globals.
"""

import os as _os

# numba's OpenMP threads spin while they wait by default; on a shared 2-core
# machine a spinning thread starves its partner and a 1 ms kernel takes 20 ms.
# Passive waiting must be chosen before the first parallel kernel starts.
_os.environ.setdefault("OMP_WAIT_POLICY", "passive")

from .result import FRAME_COLUMNS, RIM_COLUMNS, FrameResult, PlaneCheck, RimMeasurement

__all__ = ["FRAME_COLUMNS", "RIM_COLUMNS", "FrameResult", "PlaneCheck", "RimMeasurement"]
