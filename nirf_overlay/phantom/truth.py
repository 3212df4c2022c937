"""The truth of a phantom frame and its sidecar file.

:class:`Truth` holds the masks (as one label bit field, :data:`LABEL_BITS`)
and the numbers every frame should produce; :class:`LesionTruth` one
metastasis of it.  :class:`TruthWriter` / :func:`save_truth` stream a
recording's truth into a ``*_truth.npz`` sidecar, :func:`load_truth` and
:func:`load_params` read it back.  The definitions of T, B and the masks are in
the package docstring (:mod:`nirf_overlay.phantom`).
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from .params import PhantomParams, params_from_dict

# Bits of Truth.labels (one uint8 per pixel keeps a pre-rendered loop small).
RIM, CORE, DUCT, GALLBLADDER, SPILL, INSTRUMENT, SPECULAR, RING = (1 << k for k in range(8))
LABEL_BITS = {
    "rim": RIM, "core": CORE, "duct": DUCT, "gallbladder": GALLBLADDER, "spill": SPILL,
    "instrument": INSTRUMENT, "specular": SPECULAR, "ring": RING,
}
#: bright ICG that is not a rim
DISTRACTOR = DUCT | GALLBLADDER | SPILL


@dataclass
class LesionTruth:
    """Truth for one metastasis in one frame (intensities in normalised counts)."""

    id: int
    center_xy: tuple[float, float]  # view pixels
    rim_width_mm: float
    completeness: float
    target_intensity: float  # NaN when the rim is not visible
    background_intensity: float
    tbr: float
    core_radius_mm: float = 0.0
    blur_sigma_mm: float = 0.0
    depth_mm: float = 0.0
    rim_area_px: int = 0  # visible rim pixels in this frame
    target_tbr: float = 0.0  # the drawn TBR the rim amplitude was solved for
    #: the rim's true gap in this frame: its middle, degrees round the lesion
    #: centre in image coordinates (0 = +x, 90 = +y), and its extent (0: a
    #: complete rim); the gap is where the drawn arc is not
    gap_center_deg: float = 0.0
    gap_deg: float = 0.0


class Truth:
    """Ground truth of one phantom frame.

    The masks are decoded on demand from ``labels`` (one uint8 per pixel, bits
    in :data:`LABEL_BITS`) so that a pre-rendered loop stays small.

    Attributes
    ----------
    labels : (H, W) uint8 bit field, WL pixel coordinates
    rim_mask, core_mask, duct_mask, gallbladder_mask, spill_mask,
    distractor_mask, instrument_mask, specular_mask, ring_mask : (H, W) bool
        Visible pixels of each kind; ``distractor_mask`` is the union of bright
        non-rim ICG (duct, gallbladder, spills); ``ring_mask`` the background
        rings B was taken over.
    mm_per_px : calibration millimetres per pixel (at breathing scale 1)
    lesions : list of :class:`LesionTruth`
    target_intensity, background_intensity, tbr : rim-area weighted over the
        visible lesions, NaN when none is visible
    gain, exposure_ms : what the camera used for this frame
    scale : the frame's breathing/zoom scale (true mm per px = mm_per_px / scale)
    transform : (2, 3) float64, the frame's image-from-world affine (world px ->
        view px; a similarity), or None when unknown.  The motion between
        frames i and j is ``transform_j @ inverse(transform_i)``
        (:func:`motion_between`).
    """

    def __init__(self, labels, mm_per_px, lesions, gain, exposure_ms, scale=1.0, transform=None):
        self.labels = labels
        self.mm_per_px = float(mm_per_px)
        self.lesions = list(lesions)
        self.gain = float(gain)
        self.exposure_ms = float(exposure_ms)
        self.scale = float(scale)
        self.transform = None if transform is None else np.asarray(transform, np.float64).reshape(2, 3)
        vis = [lt for lt in self.lesions if lt.rim_area_px > 0]
        area = float(sum(lt.rim_area_px for lt in vis))
        if area > 0:
            self.target_intensity = sum(lt.target_intensity * lt.rim_area_px for lt in vis) / area
            self.background_intensity = (
                sum(lt.background_intensity * lt.rim_area_px for lt in vis) / area
            )
            self.tbr = self.target_intensity / self.background_intensity
        else:
            self.target_intensity = self.background_intensity = self.tbr = float("nan")

    def _bits(self, bits: int) -> np.ndarray:
        return (self.labels & np.uint8(bits)) != 0

    rim_mask = property(lambda self: self._bits(RIM))
    core_mask = property(lambda self: self._bits(CORE))
    duct_mask = property(lambda self: self._bits(DUCT))
    gallbladder_mask = property(lambda self: self._bits(GALLBLADDER))
    spill_mask = property(lambda self: self._bits(SPILL))
    distractor_mask = property(lambda self: self._bits(DISTRACTOR))
    instrument_mask = property(lambda self: self._bits(INSTRUMENT))
    specular_mask = property(lambda self: self._bits(SPECULAR))
    ring_mask = property(lambda self: self._bits(RING))

    def __repr__(self) -> str:
        return (
            f"Truth(lesions={len(self.lesions)}, tbr={self.tbr:.2f}, T={self.target_intensity:.1f}, "
            f"B={self.background_intensity:.1f}, gain={self.gain:g})"
        )


# -- the sidecar ----------------------------------------------------------------
#: per-lesion columns of the sidecar (``lesion_<field>``, (N, L) float64)
_LESION_FIELDS = ("id", "center_x", "center_y", "rim_width_mm", "completeness", "target_intensity",
                  "background_intensity", "tbr", "core_radius_mm", "blur_sigma_mm", "depth_mm",
                  "rim_area_px", "target_tbr", "gap_center_deg", "gap_deg")


class TruthWriter:
    """Stream per-frame truth into a compressed ``.npz`` without holding the masks.

    The label stack is written frame by frame into the archive's
    ``labels.npy`` member (deflated), so a long 1080p recording needs one
    frame of mask memory; the small per-frame numbers are kept and written at
    :meth:`close`.  The result is an ordinary ``.npz`` (see :func:`save_truth`).
    """

    def __init__(self, path, n_frames: int, size, *, params: Optional[PhantomParams] = None):
        w, h = size
        self.path = str(path)
        self.n = int(n_frames)
        self.params = params
        self._zip = zipfile.ZipFile(self.path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6)
        self._member = self._zip.open(self._entry("labels.npy"), "w", force_zip64=True)
        np.lib.format.write_array_header_1_0(
            self._member, {"descr": "|u1", "fortran_order": False, "shape": (self.n, h, w)})
        self._shape = (h, w)
        self._truths: list = []

    @staticmethod
    def _entry(name):
        """A member with a fixed date, so that the same truth gives the same bytes."""
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        return info

    def add(self, truth: Truth) -> None:
        if len(self._truths) >= self.n:
            raise ValueError(f"{self.path}: more than the {self.n} frames announced")
        if truth.labels.shape != self._shape:
            raise ValueError(f"{self.path}: labels {truth.labels.shape} != {self._shape}")
        self._member.write(np.ascontiguousarray(truth.labels, np.uint8).tobytes())
        # keep the numbers, drop the masks
        self._truths.append(Truth(None, truth.mm_per_px, truth.lesions, truth.gain,
                                  truth.exposure_ms, truth.scale, truth.transform))

    def close(self) -> None:
        if self._zip is None:
            return
        if len(self._truths) != self.n:
            raise ValueError(f"{self.path}: {len(self._truths)} frames written, {self.n} announced")
        self._member.close()
        truths = self._truths
        n = len(truths)
        L = max((len(t.lesions) for t in truths), default=0)
        out = {
            "mm_per_px": np.float64(truths[0].mm_per_px if truths else float("nan")),
            "label_bits": np.array(json.dumps(LABEL_BITS)),
            "params": np.array(json.dumps(asdict(self.params) if self.params else {})),
        }
        for name in ("target_intensity", "background_intensity", "tbr", "gain", "exposure_ms", "scale"):
            out[name] = np.array([getattr(t, name) for t in truths], np.float64)
        out["transform"] = np.array([np.full((2, 3), np.nan) if t.transform is None else t.transform
                                     for t in truths], np.float64).reshape(n, 2, 3)
        for f in _LESION_FIELDS:
            arr = np.full((n, L), np.nan)
            for i, t in enumerate(truths):
                for j, lt in enumerate(t.lesions):
                    if f == "center_x":
                        arr[i, j] = lt.center_xy[0]
                    elif f == "center_y":
                        arr[i, j] = lt.center_xy[1]
                    else:
                        arr[i, j] = getattr(lt, f)
            out[f"lesion_{f}"] = arr
        for name, arr in out.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(arr), allow_pickle=False)
            self._zip.writestr(self._entry(name + ".npy"), buf.getvalue())
        self._zip.close()
        self._zip = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.close()
        elif self._zip is not None:
            self._member.close()
            self._zip.close()
            self._zip = None


def save_truth(path, truths, *, params: Optional[PhantomParams] = None) -> None:
    """Write per-frame truth of a recording to a compressed ``.npz``.

    Arrays: ``labels (N, H, W) uint8`` (bits in ``label_bits``), per frame
    ``target_intensity``, ``background_intensity``, ``tbr``, ``gain``,
    ``exposure_ms``, ``scale`` (N,), ``transform`` (N, 2, 3) image-from-world
    affines (NaN where unknown), per lesion ``lesion_<field> (N, L)`` (NaN
    where a frame has fewer lesions), and ``mm_per_px``; ``params`` as JSON.
    """
    truths = list(truths)
    if not truths:
        raise ValueError(f"{path}: no frames to save")
    h, w = truths[0].labels.shape
    with TruthWriter(path, len(truths), (w, h), params=params) as tw:
        for t in truths:
            tw.add(t)


def load_params(path) -> PhantomParams:
    """The PhantomParams a truth sidecar (``*_truth.npz``) was rendered with."""
    with np.load(path) as z:
        return params_from_dict(json.loads(str(z["params"])))


def load_truth(path) -> list[Truth]:
    """Read a sidecar written by :func:`save_truth` back into :class:`Truth` objects."""
    with np.load(path) as z:
        labels = z["labels"]
        mm = float(z["mm_per_px"])
        per = {k: z[k] for k in z.files}
    truths = []
    for i in range(labels.shape[0]):
        lesions = []
        for j in range(per["lesion_id"].shape[1]):
            if np.isnan(per["lesion_id"][i, j]):
                continue
            g = {f: per[f"lesion_{f}"][i, j] for f in _LESION_FIELDS if f"lesion_{f}" in per}
            lesions.append(LesionTruth(
                id=int(g["id"]), center_xy=(float(g["center_x"]), float(g["center_y"])),
                rim_width_mm=float(g["rim_width_mm"]), completeness=float(g["completeness"]),
                target_intensity=float(g["target_intensity"]),
                background_intensity=float(g["background_intensity"]), tbr=float(g["tbr"]),
                core_radius_mm=float(g["core_radius_mm"]), blur_sigma_mm=float(g["blur_sigma_mm"]),
                depth_mm=float(g["depth_mm"]), rim_area_px=int(g["rim_area_px"]),
                target_tbr=float(g["target_tbr"]),
                gap_center_deg=float(g.get("gap_center_deg", 0.0)),
                gap_deg=float(g.get("gap_deg", 0.0)),
            ))
        tf = per["transform"][i] if "transform" in per else None  # (older sidecars have none)
        if tf is not None and np.isnan(tf).any():
            tf = None
        truths.append(Truth(labels[i], mm, lesions, per["gain"][i], per["exposure_ms"][i],
                            per["scale"][i], tf))
    return truths


def motion_between(a: Truth, b: Truth) -> np.ndarray:
    """(3, 3) float64: the true view-to-view motion from frame ``a`` to frame ``b``
    (a point at ``p`` in ``a``'s picture is at ``M @ p`` in ``b``'s)."""
    if a.transform is None or b.transform is None:
        raise ValueError("motion_between: a truth without its transform")
    return _h(b.transform) @ np.linalg.inv(_h(a.transform))


def _h(m: np.ndarray) -> np.ndarray:
    """A (2, 3) affine as a (3, 3) matrix."""
    return np.vstack([m, [0.0, 0.0, 1.0]])
