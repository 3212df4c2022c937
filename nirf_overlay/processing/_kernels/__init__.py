"""Private numba kernels of the processing stages, one module per consumer.

Nothing here validates its input: each stage's public entry
(:meth:`~nirf_overlay.processing.normalise.Normaliser.process`,
:meth:`~nirf_overlay.processing.composite.Compositor.render`,
:meth:`~nirf_overlay.processing.analysis.RimAnalyzer.analyze`,
:func:`~nirf_overlay.processing.segment.find_candidates`,
:func:`~nirf_overlay.processing.refine.refine_rim`) checks dtype, shape and
layout once and then calls these (scikit-image's public function ->
``_validate_inputs`` -> private kernel).

=================  =====================================================
module             called by
=================  =====================================================
``pixel``          normalise, composite: the two per-pixel sweeps
``sample``         normalise, levels: the subsampled histograms, levels
``grid``           grid: the analysis grid's pyramid and mask upscaling
``segment``        fluorescence, instruments, cores, masks
``background``     background: the liver ring's median
``refine``         refine: zones, normalised rim signal, core, outline
``width``          width: cross-sections across the rim; refine_grid: the
                   mask's outer edge from the width
``fit``            width: the blurred-rim model fit
``band``           band: the rim's own peak per direction round the core
=================  =====================================================

**Each module is one numba cache unit and self-contained.**  numba
invalidates a cached kernel only when *its own* source file changes, not
when a function or a global it uses from another file does (numba's "Notes
on Caching": cache invalidation does not see changes in symbols defined in
another file).  So a module calls and reads only what is defined in it, and
editing a kernel recompiles only its module.  The little two modules share
is copied -- ``_median_f32`` (numpy's median arithmetic) and the
``NO_SIGNAL`` marker -- and ``tests/test_measure_kernels.py`` checks that
the copies are the same and that no module imports from another.
"""
