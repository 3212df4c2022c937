"""A synthetic laparoscopic liver procedure with ICG fluorescence and ground truth.

The phantom renders paired white-light (WL) and near-infrared (NIR) frames of a
liver surface with colorectal liver metastases (CRLM), deterministically per
seed, together with the truth every frame should produce: rim, core and
distractor masks, the rim width in mm and the target and background
intensities.  It is what the tests, the demos, the benchmarks and the bundled
sample are made of.

What it models
--------------
*Scene* (world coordinates, a canvas larger than the view so that motion never
shows its edge; one world pixel = ``mm_per_px`` at scale 1):

- parenchyma fluorescence ``P(x)``: level ``background`` with a smooth spatial
  variation (``background_variation``) and hepatic vessels slightly darker
  (less ICG in blood 24 h after injection);
- 1-3 metastases: a wobbly hypofluorescent core (``core_level`` x P) and a
  fluorescent rim of constant perpendicular width ``w`` (1-3 mm) around it (the
  set of points within ``w`` of the core, so the width is exactly ``w``
  everywhere), covering an arc of 50-100 % of the circumference, with patchy
  intensity along the arc; each lesion is blurred by tissue scattering with a
  Gaussian whose sigma grows with the lesion's depth, and its rim amplitude is
  solved so that the *observed* (blurred) TBR equals the drawn target;
- bright ICG that is not a rim: a curved tubular bile duct (1-3 mm), a filled
  gallbladder and small bile spills, blurred as well;
- an instrument (metal shaft and jaw, entering from an edge, moving) that
  occludes both channels, and specular highlights (WL only);
- camera motion and breathing: one smooth similarity transform per frame
  (translation, rotation, scale) applied to the whole scene and to its truth.

*Camera* (view coordinates):

- NIR vignetting ``flat`` (cos^4 falloff, mean 1), exposure and gain with an
  auto-gain step (x ``gain_step_factor`` at ``gain_step_s``), shot noise from
  electrons (exact Poisson below 10 e-, the normal approximation with the same
  mean and variance above), Gaussian read noise in electrons, a dark offset
  (60-200 counts) with row, column and pixel fixed pattern and hot pixels,
  12 bits in a 16-bit container clipped at 4095 (bright bile can saturate
  after the gain step);
- WL: mild illumination falloff and a little sensor noise.

The normals for shot and read noise come from a bank drawn once per phantom
and read at random offsets per frame: each frame's noise is white, and at
each pixel independent of any other frame's, at a fraction of the cost of
fresh draws at 1080p.

Every frame is rendered independently from the seed and its index (random
access, any order, any thread): ``Phantom(p).frame(i)`` is always the same.
The scene is drawn in millimetres from one random stream per part, so a seed
is the same procedure at every frame size.

Raw NIR counts::

    raw = dark + (shot(S * flat * e/e_ref * k_e) + read) * (g/g_ref) / k_e

where ``S`` is the noise-free signal in *normalised counts* (what the pipeline
gets back after dark subtraction, flat correction and division by
``(g/g_ref) * (e/e_ref)``), ``k_e`` electrons per normalised count.

Truth definitions
-----------------
All masks are ``(H, W) bool`` in WL pixel coordinates (= NIR coordinates here)
and show only what is visible: rim, core and distractor masks exclude the
instrument.

- ``target_intensity`` T of a lesion: mean of the noise-free observed signal
  ``S`` (blurred, normalised counts) over its true rim mask;
- ``background_intensity`` B: median of ``S`` over the parenchyma ring from
  ``ring_gap_mm`` to ``ring_gap_mm + ring_width_mm`` outside the lesion's full
  (closed) rim outline, excluding every rim, core, distractor (dilated by its
  blur) and the instrument;
- ``tbr`` = T / B; frame-level T, B and tbr are rim-area weighted over the
  visible lesions (NaN when no rim is visible);
- ``rim_width_mm``: the generative perpendicular rim width; ``completeness``:
  the fraction of the circumference the rim arc covers;
- ``mm_per_px`` is the calibration value (``fov_mm / width``); breathing
  scales the view by ``Truth.scale`` (within +-1.5 %), so the true size of a
  pixel in a frame is ``mm_per_px / scale``.

Modules
-------
``params`` (PhantomParams), ``scene`` (the world: parenchyma, lesions, duct,
gallbladder, spills, background rings, WL texture and glints), ``motion``
(breathing and camera motion), ``instrument``, ``camera`` (NIR and WL
sensors), ``truth`` (Truth, LesionTruth, the sidecar file) and ``render``
(:class:`Phantom`, which puts them together frame by frame).
"""

from .params import PhantomParams, params_from_dict
from .render import Phantom
from .truth import (LABEL_BITS, LesionTruth, Truth, TruthWriter, load_params, load_truth,
                    motion_between, save_truth)

__all__ = [
    "PhantomParams",
    "Phantom",
    "Truth",
    "LesionTruth",
    "LABEL_BITS",
    "save_truth",
    "TruthWriter",
    "load_truth",
    "load_params",
    "params_from_dict",
    "motion_between",
]
