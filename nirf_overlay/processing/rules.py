"""The rim rules: what physics and design fix in finding and measuring rims.

Settings (:class:`~nirf_overlay.settings.SegmentSettings`: threshold,
hysteresis, core ratio, least completeness, background ring, ...) are what a
user tunes.  Rules are not: each is a property of the tissue, the optics or
the coarse grid, or part of what makes fluorescence a rim, and each field of
:class:`RimRules` says its value, its unit and why.  Lengths are in mm and
become analysis-grid pixels through the frame's mm per pixel; "x B" is a
multiple of the local liver background, so a rule survives an auto-gain step.

Adding a rule: a field here (value, unit, reason), read as
``RIM_RULES.<name>`` where the number is used.  Changing a value changes
results; ``python3 tests/frozen/freeze.py --check`` shows where.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RimRules:
    """The fixed rules of the rim analysis (see the module docstring)."""

    # -- scale ------------------------------------------------------------------
    #: mm.  Width of view assumed without a mm-per-pixel calibration: a
    #: laparoscope 4-5 cm from the liver sees about 8 cm, so limits in mm
    #: still mean roughly what they say.
    nominal_field_mm: float = 80.0
    #: px.  The coarse analysis grid is never narrower (1080p runs on
    #: 240 x 135): about 3 px per mm of an 80 mm view, enough to find a rim,
    #: its core and the gap between them; the edges are placed per lesion on
    #: a finer grid.
    grid_min_px_across: float = 240.0
    #: px.  Least rim width on the per-lesion refine grid: with ten pixels
    #: across, the blurred edges and the cross-sections are well sampled;
    #: finer only costs time.
    refine_px_across: float = 10.0

    # -- background B (background.py) -----------------------------------------
    #: mm.  Tile of the background map: larger than a lesion's rim and core
    #: pieces, smaller than the smooth variation of liver fluorescence.
    background_tile_mm: float = 12.0
    #: px.  Least tile side on the analysis grid (enough pixels for a mean).
    background_tile_min_px: int = 8
    #: x the current estimate, one band per pass.  Pixels trusted as liver:
    #: wide first (the first estimate is only the global median), then
    #: 0.7-1.4, which leaves out fluorescence (rims, ducts, bile), dark cores
    #: and instruments without having to know where they are.
    background_bands: tuple = ((0.4, 2.0), (0.7, 1.4))
    #: fraction of a tile.  With this share of its pixels in the band a tile
    #: stands on its own; with less (a lesion covers it) it borrows from its
    #: neighbours.
    background_tile_own: float = 0.3
    #: fraction of a tile.  Least band share round a tile to borrow from;
    #: below it the tile takes the global median.
    background_tile_borrow: float = 0.02
    #: mm.  Fluorescence is left out of the ring with this margin: tissue
    #: scattering spreads a rim's light about this far, and that is not liver.
    glow_mm: float = 0.7
    #: px.  Least ring pixels for a median; with fewer, B is the map's level.
    ring_min_px: int = 8
    #: degrees.  A core a tool hides in part is completed by an ellipse fitted
    #: to its visible outline only when that outline spans this much of the
    #: way round it; over a shorter arc an ellipse's five parameters are not
    #: pinned down (seed 535: half a core in view fitted 49 x 89 px for a 44 px
    #: disk, and flipped between accepted and refused frame to frame, B -12 %
    #: on those frames), and a circle (three) completes it: a metastasis is
    #: about round.
    core_ellipse_span_deg: float = 270.0

    # -- fluorescence (fluorescence.py) ----------------------------------------
    #: x B.  The weak (hysteresis) threshold never goes lower: at 1.0 the
    #: liver itself would join every rim.
    weak_threshold_floor: float = 1.01
    #: mm², and px on the grid.  Smaller fluorescent specks are noise.
    min_fluorescence_mm2: float = 0.2
    min_fluorescence_px: int = 2

    # -- instruments (instruments.py) ------------------------------------------
    #: HSV saturation, 0-255.  Steel and plastic are grey in white light;
    #: tissue, a tumour core included, is red.
    instrument_max_saturation: int = 50
    #: HSV value, 0-255.  Near-black pixels have no reliable saturation
    #: (and a shadow is not a tool).
    instrument_min_value: int = 25
    #: x the global liver level.  A tool blocks the fluorescence.  (Specular
    #: highlights are grey too, but normal in NIR.)
    instrument_nir_dark: float = 0.6

    # -- cores and rims (cores.py) ---------------------------------------------
    #: mm, and at least px on the grid.  The widest rim looked for (ICG rims
    #: are 1-5 mm): fluorescence further from the core is a duct or the
    #: gallbladder running into the rim.
    max_rim_width_mm: float = 8.0
    max_rim_width_min_px: float = 3.0
    #: mm, and at least px on the grid.  Allowed gap between the dark core
    #: and the rim (the blurred transition that is neither); never under
    #: 1.5 px, beyond an 8-neighbour (1.37 px of chamfer distance).
    core_gap_mm: float = 1.5
    core_gap_min_px: float = 1.5
    #: mm.  A core with no pixel this deep inside it is a sliver (a tool's
    #: edge blended with liver on the coarse grid, the gap between two ducts).
    core_open_mm: float = 0.6
    #: x least core area.  Pixels deeper than ``core_open_mm`` that make a blob.
    core_blob_fraction: float = 0.1
    #: x least core area.  The part of a core not hidden by a tool is at
    #: least this.
    core_visible_fraction: float = 0.25
    #: px, and fraction of the region.  A dark region is the arc's core when
    #: the arc's seed covers at least this many of its pixels and this share.
    core_seed_min_px: int = 2
    core_seed_fraction: float = 0.05
    #: x the arc's area, and fraction of the hull.  A dark region this much
    #: larger than an open arc that fills their hull is dark liver beyond
    #: the arc's reach, not its core.
    core_max_area_per_rim: int = 8
    core_max_hull_fill: float = 0.9
    #: x the widest rim (~3 mm), plus the gap.  The arc's circle is fitted to
    #: its pixels this near the core seed, so a gallbladder or duct merged
    #: with the rim, further out, does not bend it.
    arc_fit_reach: float = 0.4
    #: x the longer side of the arc's box.  A circle this large is no arc's
    #: circle (a nearly straight duct).
    arc_max_radius: float = 2.0
    #: x circle radius, plus the gap and 1 px.  The core lies within this
    #: disk round the arc's circle (cores are not perfect circles).
    arc_core_radius: float = 1.15
    #: x ``segment.min_completeness``.  A rim tracked last frame needs only
    #: this much, so it does not flicker in and out of the rim class.
    tracked_completeness: float = 0.6
    #: x ``core_open_mm``.  A rim tracked last frame whose core the tool now
    #: hides for the most part shows a crescent of it between the tool and the
    #: arc; that crescent needs only this depth to be a core (so the rim does
    #: not flicker while the tool passes over its core).
    tracked_core_open: float = 0.6

    # -- hidden arcs and merging (arcs.py) -------------------------------------
    #: x least rim area.  Smaller pieces cut off a rim by a tool are ignored.
    arc_piece_min: float = 0.25
    #: fraction of a piece's pixels.  On a found rim's circle, for the piece
    #: to be part of that rim.
    arc_on_ring: float = 0.9
    #: x circle radius, plus half the rim width and the gap.  How far off its
    #: circle a piece may lie (cores are not perfect circles).
    arc_ring_tolerance: float = 0.06
    #: x circle radius.  A piece longer than this is not on the circle.
    arc_max_extent: float = 2.2
    #: x (rim width + gap) per unit of the piece's diagonal.  A thicker piece
    #: (a gallbladder or a duct's end next to the tool) is not this rim.
    arc_max_thickness: float = 1.5
    #: fraction of the smaller core.  Arcs whose cores overlap this much are
    #: one rim cut in pieces by a tool.
    shared_core: float = 0.2
    #: fraction of the disk inside a joint circle.  Two arcs on one circle
    #: (each ``arc_on_ring`` on it) whose disk -- less the rims -- holds an
    #: instrument and at most this much liver (neither dark nor hidden) are
    #: one rim whose core is joined under the tool (:func:`~.arcs.joined_under_tool`).
    arc_join_liver: float = 0.15
    #: fraction of that disk.  At least this much of it is the tool (the
    #: cores join under it; a piece beside a tool's tip that merely touches
    #: a rim's own disk is not joined).
    arc_join_tool: float = 0.1
    #: x its thickness across the circle (5-95 % of its pixels).  The arc
    #: joined under a tool is at least this long along the circle.  A round
    #: drop (a spill) or a duct's stub reads 1 or less; an arc the tool
    #: slides over shortens towards that, and its other tests (on the joint
    #: circle, a disk of core and tool) still hold: 1.5 leaves half a drop's
    #: length of margin.  (At 2.0 the bundled sample's dimmer lesion split
    #: into two rims, or lost its shorter arc, once that arc was under 2x its
    #: thickness: 1.97 ... 1.7 on phantom seed 4's frames 5-8.)
    arc_join_elongation: float = 1.5

    # -- refinement and width (refine.py, width.py) ----------------------------
    #: x B.  Where the local peak is less than this above B there is no rim
    #: signal to place an edge in.
    min_span: float = 0.15
    #: count.  Cross-sections per rim (evenly spread medial points): plenty
    #: for a median, cheap at any rim size.
    width_max_sections: int = 300
    #: count.  With fewer cross-sections that find both edges the mean
    #: profile is not worth fitting: the half-maximum width is kept.
    fit_min_sections: int = 8
    #: profile units (1 = the rim's peak above liver).  The fitted rim must
    #: stand this far above liver to be believed.
    fit_min_rim: float = 0.2
    #: profile units.  The fitted outer edge must lie this far above liver.
    fit_min_edge: float = 0.05
    #: x the half-maximum width.  Blur only ever widens a rim; a fit this
    #: much wider is wrong.
    fit_max_width: float = 1.6
    #: x the median half-maximum width.  A cross-section wider than this runs
    #: through a neighbour merged with the rim above half maximum (a duct
    #: along its outside): left out of the mean profile that is fitted.
    fit_section_max_width: float = 1.25
    #: profile units.  A cross-section whose outer side rises this far above
    #: its lowest point beyond the edge (within the fitted profile's reach)
    #: runs into a neighbour's blur: left out of the mean profile too.
    fit_section_rise: float = 0.15

    # -- the rim's radial band (band.py) ---------------------------------------
    #: quantile.  The rim's outer edge in a direction round the core: this
    #: high quantile of its pixels' distance to the core (not the maximum: a
    #: stray pixel would set it).
    band_outer_quantile: float = 0.95
    #: bins of ``gap_bin_deg``, each side.  The outer edge is the median over
    #: this many neighbouring directions (30 degrees each side): a duct
    #: leaving the rim covers a few of them, so it does not move the median;
    #: a rim's own width changes slowly along the core.
    band_smooth_bins: int = 6
    #: x rim thickness.  Rim pixels further from the core than the outer edge
    #: + thickness x this + ``band_margin_px`` are not rim: a duct or the
    #: gallbladder running out of the rim.  (The margin covers the high
    #: quantile's shortfall and the blurred join with the duct.)
    band_tolerance: float = 0.05
    #: px of the grid the band is cut on: the pixel quantisation of the edges.
    band_margin_px: float = 1.0
    #: x thickness squared.  A piece beyond the band is cut when it is at
    #: least this large (a duct's stub is about a width across and longer);
    #: smaller ones are bumps of the rim's own edge (noise) and stay.
    band_min_piece: float = 0.1
    #: px of that grid.  ... and at least 3 px across (its middle deeper than
    #: this): a sliver of a pixel or two along the rim's outer edge (where
    #: the median edge of the neighbouring directions is a little short) is
    #: the rim's own edge.
    band_min_depth_px: float = 1.5
    #: x thickness squared.  A thinner piece beyond the band is cut too when
    #: it is this large: the side of a duct running along the rim's outside
    #: (a sliver a few thicknesses long), not the rim edge's noise.
    band_min_sliver: float = 0.5
    #: bins of ``gap_bin_deg``, each side.  The rim's own radial extent in a
    #: direction is the median over this many neighbouring directions (90
    #: degrees each side): a duct along the rim's outside widens less than
    #: half of them, and a rim's width changes slowly over them.  (Tuned on
    #: seed 900's tangent ducts: 6 or 12 bins left 14-17 % of a bright 1 mm
    #: duct as rim, 18 bins 6.7 %; a median over all directions cut a rim
    #: whose width changes round the core, tests/test_band.py.)
    band_extent_bins: int = 18
    #: px.  In directions where the band is wider than the rim's own extent
    #: by more than the tolerance (a duct runs alongside), the rim is cut
    #: this far beyond its own outer edge (inner edge + extent).
    band_widened_margin_px: float = 0.5
    #: x rim thickness.  Rim pixels this near a tool (or the frame edge)
    #: may lie beside a hidden part of the core, so their distance to the
    #: visible core says nothing about the rim's band: they are measured
    #: from the core completed by its ellipse, or from the core pieces seen
    #: when none fits or it is not sure (``band_hidden_min_coverage``), and
    #: a piece beyond the band there is cut only when it runs away from the
    #: core like a duct (``band_tube_spread``, ``band_arc_*``).
    band_blocked_reach: float = 2.0
    #: Fraction of the directions round the core (``gap_bin_deg`` bins)
    #: that its visible outline must cover for the ellipse through it to
    #: stand for the core a tool hides (band.py: rim pixels beside the tool
    #: are measured from it); with less, from the core pieces seen (and
    #: only a piece shaped like a duct is cut, ``band_tube_spread``).  A
    #: tool's tip at the core leaves 0.9 of it (seed 904); a tool across the
    #: lesion 0.36-0.6 (903, 501; 501's ellipse fell a thickness short of
    #: the far arc's inner edge, which was cut: Dice 0.954 -> 0.875).
    band_hidden_min_coverage: float = 0.75
    #: x rim thickness.  A piece beyond the band beside a tool is a duct's
    #: end only when its pixels' distances from the core's centre spread
    #: (5-95 %) over at least this: a tube runs away from the core, a rim's
    #: arc keeps its width from the centre (707, 709: up to 1.43; ducts
    #: beside a tool's tip, 904 and 905: 1.9-2.8).  (band.py ``_runs_away``)
    band_tube_spread: float = 1.5
    #: ... and when it does not lie on a circle round the core: the circle
    #: through its pixels at most this x (core's equivalent radius +
    #: thickness) ...
    band_arc_radius: float = 2.5
    #: ... centred within this x thickness of the core or the tool (the core
    #: hidden under it) ...
    band_arc_centre: float = 1.0
    #: ... with its pixels within this x thickness of the circle (5-95 %).
    #: A rim's far arc beyond a tool across the lesion spreads from the
    #: centre seen like a tube (706: 2.8) but lies on such a circle (0.95);
    #: a straight duct does not (904, 905: 1.75-2.8).
    band_arc_residual: float = 1.5
    #: x thickness.  A piece beyond the band beside a tool with at least
    #: this many pixels of bright fluorescence (above the rim's outer edge
    #: level) outside the rim's zone within 2 px of it runs on outward as a
    #: duct does: it is a duct's end, however short, unless it lies on a
    #: circle round the core (``band_arc_*``) at least ``band_arc_min_radius``
    #: large.  (band.py ``_runs_on_beyond``; 903's stubs beside a tool across
    #: the lesion: 0.58 -> 0.07 of the duct labelled rim.)
    band_runs_on: float = 0.5
    #: x (core's equivalent radius + thickness).  A short stub's blob fits a
    #: small circle (903: 0.15-0.18); rims' arcs 0.5-1.3 (501, 706, 709).
    band_arc_min_radius: float = 0.4
    #: x the rim's span above B.  In a direction round the core whose
    #: brightest pixel near the rim lies beyond the rim's middle, brighter by
    #: more than this than the rim's inner half there (the profile still
    #: rising outward: a neighbour outside the rim, a duct alongside or
    #: running in), the rim's own peak is not seen there; it is taken from
    #: along the rim instead (the median over ``band_extent_bins``
    #: directions each side).  A rim's own profile peaks in its middle
    #: (band.py).  (0.25 left seed 901's bright 1 mm tangent duct's rim at
    #: Dice 0.70, 0.05: 0.88.)
    peak_raised_tolerance: float = 0.05
    #: x the rim's span above B.  The local rim peak (the max over a window
    #: as wide as the rim) may exceed the rim's own peak by this much: the
    #: own peak in that direction, or over the ``peak_cap_bins`` directions
    #: each side the window spans (a bright patch of the rim), or along the
    #: rim where a neighbour raised it.  More, and the rim's edges would be
    #: placed against the neighbour's level.  (Tuned on seeds 901 and 903.)
    peak_cap_tolerance: float = 0.25
    #: bins of ``gap_bin_deg``, each side: about the angle the peak's window
    #: spans round a core.
    peak_cap_bins: int = 3

    # -- tracking (track.py) ---------------------------------------------------
    #: frames.  A track outlives this many frames without its rim, so a rim
    #: hidden for a moment by a tool gets its id back (0.25-0.5 s).
    track_max_missed: int = 15
    #: px per sqrt(px of area).  A larger lesion's centroid wobbles more:
    #: the allowed shift grows by this times the root of its area.
    track_shift_per_sqrt_area: float = 0.25

    # -- rim gaps (gaps.py) ----------------------------------------------------
    #: degrees.  Angle bins of the core's outline round its centre: fine
    #: enough to place a gap's ends within a few degrees, coarse enough that
    #: every bin of a 2 mm core holds outline pixels.
    gap_bin_deg: float = 5.0
    #: degrees.  A shorter uncovered arc is no gap: patchy rims and the
    #: blur at a tool's edge leave breaks of a bin or two.
    gap_min_deg: float = 15.0

    # -- analysis that uses time (reuse.py; setting segment.reuse_rims) --------
    #: frames.  With rims re-measured where the motion puts them, the full
    #: candidate search still runs at least every this many frames (60 fps:
    #: 7.5 times a second; 30 fps: 3.75), so a rim that appears without a
    #: trigger below (from under a still tool, say) is found within 0.13-0.27 s,
    #: less than the 0.25-0.5 s a hidden rim keeps its track.
    reuse_search_every: int = 8
    #: motion confidence (0-1, :mod:`.motion`).  Below this the frame's
    #: motion may be wrong, so rims are not placed by it: full search.  Above
    #: the 0.35 at which motion counts at all (MOTION_RULES.min_confidence).
    reuse_min_confidence: float = 0.5
    #: fraction of the frame width.  When a corner of the view has moved this
    #: far since the last full search (pan, turn or zoom), new tissue has
    #: entered at the edges: full search.  5 % of an 80 mm view is 4 mm, less
    #: than the smallest lesion (core + rim) worth finding.
    reuse_max_view_shift: float = 0.05
    #: fraction of a rim's grid pixels.  A moved rim with less of itself in
    #: this frame's fluorescence is lost (a tool over it, a bad motion): full
    #: search this frame.
    reuse_min_overlap: float = 0.5
    #: fraction of area.  When the fluorescent components under the moved
    #: rims, or the rim-sized ones under none, have grown by more than this
    #: since the last full search, tissue is coming into view (from under a
    #: tool that moves off it, at the frame's edge) that a moved rim would
    #: not cover, or a lesion whose core a tool hid may now be found: full
    #: search.  Above the 3 % a view's breathing (+-1.5 % in scale) changes
    #: an area by.
    reuse_max_growth: float = 0.05


#: The rules every analysis uses.
RIM_RULES = RimRules()
