"""The processing pipeline: FramePair -> normalised NIR -> rims, metrics -> composite.

Public entry point: :class:`~.pipeline.Pipeline`.  State (filter buffers,
display levels, rim tracks) lives in the Pipeline object, never in module
globals.  One module per idea:

=====================  =============================================================
``pipeline``           the four stages per frame, per-stream state
``warmup``             compiling (or loading) the numba kernels before the first frame
``analysis_mode``      when the live pipeline analyses every frame in sync, and the fall-back
``frame_threads``      parts of one frame's work side by side on a small thread pool
``cv_threads``         OpenCV single-threaded while a stage of small images runs
``digest``             ``state_digest``: the carried state as one hash (batch)
``result``             FrameResult, RimMeasurement, PlaneCheck, the CSV columns
``normalise``          dark, flat, gain, temporal filter, saturation (Normaliser)
``transfer``           display-encoded NIR to linear signal; what the ratios are of
``black_level``        the black level under an instrument when there is no dark frame
``levels``             display levels from the subsampled histogram, compression
``composite``          the display frame: one renderer per display mode (Compositor)
``colormaps``          colour maps and the drawing colours of each
``analysis``           RimAnalyzer: the rim analysis of one frame, end to end
``async_analysis``     the analysis on its own thread (live display)
``motion``             the tissue's motion between frames, from the white light
``follow``             the motion accumulated since a recent frame
``reuse``              rims re-measured where the motion puts them (analysis over time)
``rules``              RimRules: the fixed numbers of the analysis, each with its reason
``background``         every background level B (global, map, the lesion's ring)
``grid``               the coarse analysis grid: scale, pyramid, frame-size masks
``fluorescence``       the fluorescence mask, hysteresis in space and time
``instruments``        grey in white light and dark in NIR
``segment``            rim candidates: the segmentation's entry
``candidates``         the Candidate record; joining candidates
``cores``              per fluorescent component, its dark core and rim
``arcs``               a rim cut by a tool: hidden arcs joined, shared cores merged
``band``               the rim's radial band round the core it encloses (ducts cut)
``gaps``               the arcs of a core's outline that no rim covers
``masks``              exact boxes and crops, outlines, centroids, circle fits
``refine_grid``        a lesion's refine grid and its rim back in WL pixels
``refine``             the half-maximum rim edge, T, completeness, outline (refine_rim)
``width``              the rim width: cross-sections and the blurred-rim fit
``plane``              the transection-plane check
``plane_anchor``       the transection plane anchored to the moving tissue
``track``              stable rim ids from frame to frame
``_validate``          the stages' input checks
``_kernels/``          the private numba kernels, one module (cache unit) per consumer
=====================  =============================================================

Importing the package stays light (the result types only); the stages are
imported from their modules.
"""
import os as _os

# numba's OpenMP threads spin while they wait by default; on a shared 2-core
# machine a spinning thread starves its partner and a 1 ms kernel takes 20 ms.
# Passive waiting must be chosen before the first parallel kernel starts.
_os.environ.setdefault("OMP_WAIT_POLICY", "passive")

from .result import FRAME_COLUMNS, RIM_COLUMNS, FrameResult, PlaneCheck, RimMeasurement

__all__ = ["FRAME_COLUMNS", "RIM_COLUMNS", "FrameResult", "PlaneCheck", "RimMeasurement"]
