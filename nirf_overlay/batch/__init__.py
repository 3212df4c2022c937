"""Analyse many recorded sessions on a Dask cluster.

Each session is cut into frame-range chunks (:mod:`.chunks`).  A chunk
starts ``warmup`` frames before its first reported frame so that the
temporal state of the pipeline (the noise filter, the rim tracks) is the one
a sequential run would have there; the warm-up frames are processed and
thrown away.  The chunks' rows are then joined and their rim ids renumbered
(:mod:`.stitch`).  The result is the same, frame for frame and cell for
cell, as ``nirf-overlay process`` on the whole session: both run the one
frame loop (:func:`nirf_overlay.engine.run_frames`) and write through the
one :class:`~nirf_overlay.export.MetricsSink`.  The study tables
(:mod:`.study`) and the HTML report (:mod:`.report`) follow.

Everything here is Qt-free and runs in Dask worker processes; the worker
function is :func:`~.chunks.process_chunk`, the entry point :func:`run_batch`.
"""

from .chunks import (DEFAULT_CHUNK_FRAMES, Chunk, ChunkResult, plan_chunks, process_chunk,
                     warmup_frames)
from .run import check_scheduler, run_batch
from .security import tls_security
from .stitch import stitch, verify
from .study import SUMMARY_COLUMNS, summarise

__all__ = ["Chunk", "ChunkResult", "DEFAULT_CHUNK_FRAMES", "SUMMARY_COLUMNS", "check_scheduler",
           "plan_chunks",
           "process_chunk", "run_batch", "stitch", "summarise", "tls_security", "verify",
           "warmup_frames"]
