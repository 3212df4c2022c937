"""Phantom tower recordings as a user's input: written as H.264 and read back.

:class:`TowerInput` renders a :class:`~nirf_overlay.phantom.tower.Tower`'s
frames, writes them as an 8-bit H.264 file (:func:`write_tower_video`, the
file ``make-sample --tower`` writes), saves the tower's calibration profile
(its layout, ``ignore_rects``, ``mm_per_px`` and a NIR transfer) and opens the
file through the real combined source with ``--calibration`` as a user
would (:func:`~nirf_overlay.calibration.resolve_calibration`, the one rule).
The pairs it yields (:meth:`TowerInput.pairs`) carry the phantom's truth, in WL-inset pixels, so
:func:`nirf_overlay.evaluate.evaluate` scores them as any phantom frames
(``python -m nirf_overlay.evaluate --tower LAYOUT --curve C [--transfer T]``).

Transfers (``transfer``): ``"lut"`` (default), the table that undoes the
tower's curve (:func:`write_transfer_csv`, the ``NAME_transfer.csv`` of
``make-sample --tower``); ``"none"``: no transfer, so the ratios are of
display values; anything else is a ``--nir-transfer`` spec (``gamma:2.2``).
"""

from __future__ import annotations

import os
from typing import Callable, Iterator, Optional

from .calibration import Calibration, CalibrationRequest, resolve_calibration, save_profile
from .calibration.model import Layout
from .calibration.transfer import parse_transfer, write_lut
from .phantom.tower import Tower, curve_lut
from .recording.encoders import finish_file, raw_video_encoder, write_frame
from .sources import SourceSpec, open_source

#: what ``transfer`` may be besides a spec
LUT, NONE = "lut", "none"
#: FFmpeg's colour conversion for tower files: rounded, full-resolution chroma
SWS_FLAGS = "accurate_rnd+full_chroma_int"


def write_tower_video(tower: Tower, path: str, frames, *, crf: int = 16,
                      on_frame: Optional[Callable] = None) -> None:
    """Write ``tower``'s frames ``frames`` (an iterable of indices) to ``path``: H.264
    (libx264, yuv420p, CRF ``crf``), as a frame grabber records a tower's output;
    ``on_frame(index, TowerFrame)`` hears each frame written."""
    w, h = tower.params.size
    # the RGB -> YCbCr conversion rounded, and grey kept grey: FFmpeg's default
    # conversion truncates (every NIR display code about 2 lower after decoding,
    # TBR +5 % through a gamma-2.4 transfer) and tints grey (Cb 127), which a
    # tower's YCbCr output does not
    enc = raw_video_encoder(path, (w, h), tower.fps, pix_in="bgr24", codec_args=[
        "-sws_flags", SWS_FLAGS, "-c:v", "libx264", "-preset", "medium", "-crf", str(crf),
        "-pix_fmt", "yuv420p", "-movflags", "+faststart"])
    try:
        for i in frames:
            f = tower.frame(i)
            write_frame(enc, f.frame, path)
            if on_frame is not None:
                on_frame(i, f)
    finally:
        finish_file(enc, path)


def write_transfer_csv(curve: str, path: str) -> str:
    """The LUT that undoes ``curve`` (rows ``display,linear``, display as a fraction
    of full scale): ``--nir-transfer lut:PATH``.  Returns ``path``."""
    write_lut(path, ((d / 255, v) for d, v in enumerate(curve_lut(curve))))
    return path


class TowerInput:
    """A tower recording of ``tower``'s frames ``frames`` opened as a user would open it.

    Writes the H.264 file and the profile into ``workdir``, opens the file with
    ``--combined FILE --calibration PROFILE`` (plus ``--dark``/``--flat`` when
    given) and keeps the calibration that applies (:attr:`calibration`, for
    the pipeline).  Use as a context manager; :meth:`pairs` yields the pairs.

    Parameters
    ----------
    tower : the tower (its phantom's truth is in WL-inset pixels)
    frames : consecutive frame indices (the file starts at ``frames[0]``)
    workdir : an existing directory for the file, the profile and the LUT
    transfer : ``"lut"``, ``"none"`` or a ``--nir-transfer`` spec (module docstring)
    crf : H.264 quality
    dark, flat : ``--dark`` / ``--flat`` files given with the recording
    camera_flat : put the camera's vignetting in the profile as its flat (a flat
        measured through the tower; without it the vignetting stays in T and B)
    """

    def __init__(self, tower: Tower, frames: range, workdir: str, *, transfer: str = LUT,
                 crf: int = 16, dark: Optional[str] = None, flat: Optional[str] = None,
                 camera_flat: bool = True):
        self.frames = frames
        self._truths: dict = {}
        self.video = os.path.join(workdir, "tower.mp4")
        write_tower_video(tower, self.video, frames, crf=crf,
                          on_frame=lambda i, f: self._truths.__setitem__(i, f.pair.truth))
        self.profile = os.path.join(workdir, "tower_profile.json")
        save_profile(tower_calibration(tower, workdir, transfer, camera_flat=camera_flat),
                     self.profile)
        self.source = open_source(SourceSpec(combined=self.video))
        try:
            request = CalibrationRequest(profile=self.profile, dark=dark, flat=flat)
            self.calibration = resolve_calibration(request, self.source).calibration
        except Exception:
            self.source.close()
            raise

    def pairs(self) -> Iterator:
        """The source's pairs in order, each with its ``truth`` (``meta["tower_frame"]``:
        the tower frame index)."""
        for k, pair in enumerate(self.source):
            pair.truth = self._truths[self.frames[k]]
            pair.meta["tower_frame"] = self.frames[k]
            yield pair

    def close(self) -> None:
        self.source.close()

    def __enter__(self) -> "TowerInput":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def tower_calibration(tower: Tower, workdir: str, transfer: str = LUT, *,
                      camera_flat: bool = True) -> Calibration:
    """The profile a user would make for ``tower``: its insets, its text as ignore
    boxes, mm per WL pixel, the transfer (``transfer`` as in :class:`TowerInput`;
    a LUT is written into ``workdir``) and, with ``camera_flat``, the camera's
    vignetting as the flat (in WL-inset pixels, where the phantom renders).

    The tower subtracted the camera's dark before encoding, so there is no dark."""
    if transfer == NONE:
        t = None
    elif transfer == LUT:
        t = parse_transfer("lut:" + write_transfer_csv(
            tower.params.curve, os.path.join(workdir, "tower_transfer.csv")))
    else:
        t = parse_transfer(transfer, what="--transfer")
    r = tower.rects
    return Calibration(layout=Layout(tuple(r["wl"]), tuple(r["nir"])),
                       ignore_rects=[list(b) for b in tower.ignore_rects()],
                       mm_per_px=tower.phantom.mm_per_px, frame_size=tuple(r["wl"][2:]),
                       nir_transfer=t, system="nirf-overlay phantom tower",
                       flat=tower.phantom.flat_field() if camera_flat else None)
