"""Guided calibration on a live source, without Qt (the dialog is only a view of this).

:class:`CalibrationGrabber` opens a source on its own thread, keeps the newest
frame with its quality readouts and a ready-to-show preview, captures N frames
on request and builds the entry from them, all off the GUI thread.  The view
polls :meth:`CalibrationGrabber.snapshot` from a timer (the newest state
wins, like the viewer's display mailbox) and never waits on the source.

::

    OPENING --> LIVE --capture()--> CAPTURING --> BUILDING --> DONE | ERROR
    OPENING --> ERROR             (the source cannot be opened)
    any     --> ENDED             (the source stopped for good; a capture under
                                   way is built from the frames it has)

``capture()`` starts again from any state but CAPTURING and BUILDING.
"""

from __future__ import annotations

import dataclasses
import enum
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..sources.nir_only import open_calibration_input
from ..calibration.photometric import (
    DARK_MAX_LEVEL, FLAT_MAX_SATURATED, FLAT_MIN_SIGNAL, build_dark, build_flat, nir_quality,
)
from ..calibration.registration import Charuco, build_registration, find_charuco, find_corners, to_gray8
from ..errors import CalibrationError, NirfError
from ..frame import clip_count

__all__ = ["CalibrationGrabber", "GrabberState", "GrabberStatus", "STEPS", "quality_flags"]

STEPS = ("dark", "flat", "register")
CORNER_INTERVAL_S = 0.3  # corner search costs tens of ms: a few times a second is enough


class GrabberStatus(str, enum.Enum):
    """Where the grabber is (see the module's diagram); a ``str`` enum, so it compares to its value."""

    OPENING = "opening"
    LIVE = "live"
    ENDED = "ended"
    CAPTURING = "capturing"
    BUILDING = "building"
    DONE = "done"
    ERROR = "error"


#: the grabber is busy with a capture: another is not started
_BUSY = (GrabberStatus.CAPTURING, GrabberStatus.BUILDING)


@dataclass(frozen=True)
class GrabberState:
    """What the view shows; frozen (the grabber swaps in a new one), safe on any thread.

    Attributes
    ----------
    status : GrabberStatus
    message : plain-language line for the status bar
    preview : (H, W, 3) uint8 BGR or None; NIR stretched to 8 bits, saturated
        pixels red, with WL beside it and detected corners drawn in register mode
    readouts : dict with ``saturated_fraction``, ``mean_counts``,
        ``signal_fraction``, ``full_scale`` and, in register mode,
        ``corners_wl`` / ``corners_nir`` (found counts) and ``corners_expected``
    captured, target : frames captured so far, frames asked for
    result : the builder's result (DarkResult / FlatResult / Registration) once built
    result_step : the step ``result`` belongs to
    frames_seen : frames read since opening
    size, nir_bits, has_wl : what the source is
    """

    status: GrabberStatus = GrabberStatus.OPENING
    message: str = ""
    preview: Optional[np.ndarray] = None
    readouts: dict = field(default_factory=dict)
    captured: int = 0
    target: int = 0
    result: object = None
    result_step: str = ""
    frames_seen: int = 0
    size: Optional[tuple] = None
    nir_bits: int = 16
    has_wl: bool = False


class CalibrationGrabber:
    """Reads a source on a worker thread for the calibration dialog.

    Parameters
    ----------
    spec : SourceSpec
    pace_fps : float
        File inputs are read at most this fast (they loop), so a preview of a
        short sequence neither spins a core nor ends at once.
    """

    def __init__(self, spec, *, pace_fps: float = 30.0):
        self._spec = spec
        self._pace = 1.0 / pace_fps if pace_fps else 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._state = GrabberState()
        self._step = "dark"
        self._board = (9, 6)
        self._charuco = None
        self._charuco_detector = None
        self._request = None  # (step, n, options) while capturing
        self._frames: list = []
        self._last_corners = 0.0
        self._corner_cache = (None, None)
        self._rewind = False
        self._thread = threading.Thread(target=self._run, name="nirf-calibration", daemon=True)

    # -- control (any thread) ---------------------------------------------------------
    def start(self) -> "CalibrationGrabber":
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reading and close the source; returns once the thread has ended (or timeout)."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def set_mode(self, step: str, board=(9, 6), charuco: Optional[Charuco] = None) -> None:
        """What the readouts should measure (corners only in register mode).

        ``charuco`` switches the corner readout to ChArUco detection.
        """
        with self._lock:
            self._step, self._board = step, tuple(board)
            self._charuco = charuco
            self._charuco_detector = None
            self._corner_cache = (None, None)

    def capture(self, step: str, n: int, **options) -> None:
        """Capture ``n`` frames, then build ``step`` with ``options`` (builder keywords).

        A file input is rewound first, so a capture from a recording starts at
        its first frame (the fronto-parallel pose for registration) whatever
        the looping preview was showing.  Ignored while a capture is under way.
        """
        if step not in STEPS:
            raise ValueError(step)
        with self._lock:
            if self._state.status in _BUSY:
                return
            self._frames = []
            self._request = (step, int(n), dict(options))
            self._rewind = True
            self._state = dataclasses.replace(
                self._state, status=GrabberStatus.CAPTURING, captured=0, target=int(n),
                result=None, result_step="", message=f"capturing {n} frames for {step}")

    def snapshot(self) -> GrabberState:
        with self._lock:
            return self._state

    # -- worker thread ------------------------------------------------------------------
    def _set(self, **changes) -> None:
        with self._lock:
            self._state = dataclasses.replace(self._state, **changes)

    def _fail(self, message: str) -> None:
        self._set(status=GrabberStatus.ERROR, message=message)

    def _run(self) -> None:
        try:
            inp = open_calibration_input(self._spec, need_wl=False, what="calibration")
        except NirfError as e:
            self._fail(str(e))
            return
        except Exception as e:  # a bug, but the dialog must still say something
            self._fail(f"calibration: cannot open the source ({e})")
            return
        self._set(status=GrabberStatus.LIVE, size=inp.size, nir_bits=inp.nir_bits,
                  has_wl=inp.has_wl, message=f"showing {inp.description}")
        try:
            self._loop(inp)
        except NirfError as e:
            self._fail(str(e))
        finally:
            inp.close()

    def _loop(self, inp) -> None:
        next_time = time.monotonic()
        while not self._stop.is_set():
            with self._lock:
                # read together: a capture asked for mid-read starts with the next loop
                rewind, self._rewind = self._rewind, False
                request = self._request
            if rewind and not inp.live:
                inp.rewind()
            try:
                cap = inp.read(0.5)
            except TimeoutError:
                continue
            if cap is None:
                if inp.rewind():
                    continue
                self._on_ended(inp)
                return
            self._on_frame(cap, request)
            if not inp.live and self._pace:
                next_time += self._pace
                delay = next_time - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                else:
                    next_time = time.monotonic()

    def _on_ended(self, inp) -> None:
        """The source ended: build what was captured, and any capture asked for until stopped."""
        self._set(status=GrabberStatus.ENDED, message=f"{inp.description}: the source ended")
        self._finish_capture()
        while not self._stop.wait(0.1):
            self._finish_capture()

    def _on_frame(self, cap, request) -> None:
        with self._lock:
            step, board, charuco = self._step, self._board, self._charuco
            seen = self._state.frames_seen + 1
        readouts = nir_quality(cap.nir, cap.nir_bits)
        corners = (None, None)
        if step == "register" and cap.wl is not None:
            now = time.monotonic()
            if now - self._last_corners >= CORNER_INTERVAL_S:
                self._last_corners = now
                self._corner_cache = self._find(cap, board, charuco)
            corners = self._corner_cache
            readouts["corners_expected"] = board[0] * board[1]
            readouts["corners_wl"] = 0 if corners[0] is None else len(corners[0])
            readouts["corners_nir"] = 0 if corners[1] is None else len(corners[1])
        preview = _preview(cap, step == "register", board, corners)
        self._set(preview=preview, readouts=readouts, frames_seen=seen)
        if request is not None:
            self._frames.append(cap)
            self._set(captured=len(self._frames))
            if len(self._frames) >= request[1]:
                self._finish_capture()

    def _find(self, cap, board, charuco):
        """(WL corners, NIR corners), each (N, 2) or None."""
        if charuco is None:
            return find_corners(cap.wl, board), find_corners(cap.nir, board)
        try:
            if self._charuco_detector is None:
                self._charuco_detector = charuco.detector()
        except NirfError as e:
            self._set(message=str(e))
            return None, None
        found = [find_charuco(img, charuco, self._charuco_detector) for img in (cap.wl, cap.nir)]
        return tuple(None if f is None else f[1] for f in found)

    def _finish_capture(self) -> None:
        with self._lock:
            request, self._request = self._request, None
        if request is None:
            return
        frames, self._frames = self._frames, []
        step, _, options = request
        if not frames:
            self._fail(f"{step}: no frames captured")
            return
        self._set(status=GrabberStatus.BUILDING, message=f"building {step} from {len(frames)} frames")
        try:
            result = _build(step, frames, options)
        except NirfError as e:
            self._fail(str(e))
            return
        self._set(status=GrabberStatus.DONE, result=result, result_step=step,
                  message=result.summary())


def _build(step, frames, options):
    bits = frames[0].nir_bits
    if step == "dark":
        return build_dark((c.nir for c in frames), nir_bits=bits, **options)
    if step == "flat":
        return build_flat((c.nir for c in frames), nir_bits=bits, **options)
    if frames[0].wl is None:
        raise CalibrationError("register: this source has no white-light channel")
    return build_registration(((c.wl, c.nir) for c in frames), **options)


def _preview(cap, register: bool, board, corners) -> np.ndarray:
    """NIR stretched to 8 bits with saturated pixels red; WL beside it for registration."""
    import cv2

    nir8 = to_gray8(cap.nir)
    nir_bgr = cv2.cvtColor(nir8, cv2.COLOR_GRAY2BGR)
    nir_bgr[cap.nir >= clip_count(float(cap.nir.max()), cap.nir_bits)] = (0, 0, 255)
    if not register or cap.wl is None:
        return nir_bgr
    wl = cap.wl.copy()
    for img, pts in ((wl, corners[0]), (nir_bgr, corners[1])):
        if pts is None:
            continue
        full = len(pts) == board[0] * board[1]
        cv2.drawChessboardCorners(img, board, pts.astype(np.float32).reshape(-1, 1, 2), full)
    if nir_bgr.shape[0] != wl.shape[0]:
        scale = wl.shape[0] / nir_bgr.shape[0]
        nir_bgr = cv2.resize(nir_bgr, (int(round(nir_bgr.shape[1] * scale)), wl.shape[0]))
    return np.hstack([wl, nir_bgr])


def quality_flags(readouts: dict, step: str) -> list[str]:
    """Plain warnings for the readouts (what the builder would refuse)."""
    out = []
    sat = readouts.get("saturated_fraction")
    if sat is not None and step == "flat" and sat > FLAT_MAX_SATURATED:
        out.append("saturated: lower exposure, gain or light")
    frac = readouts.get("signal_fraction")
    if frac is not None and step == "flat" and frac < FLAT_MIN_SIGNAL:
        out.append("too dim for a flat")
    if step == "dark" and frac is not None and frac > DARK_MAX_LEVEL:
        out.append("bright for a dark frame: light off?")
    if step == "register" and readouts.get("corners_expected"):
        if not readouts.get("corners_wl") or not readouts.get("corners_nir"):
            out.append("board not found in both channels")
    return out
