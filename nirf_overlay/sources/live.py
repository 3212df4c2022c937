"""Live capture: one thread per stream, timestamp pairing, reconnect with back-off.

Used for devices (V4L2) and network streams (``rtsp://``, ``udp://``,
``http://``), both for ``--wl/--nir`` pairs and for a live ``--combined``
stream.  Each :class:`CaptureThread` grabs as fast as the stream delivers,
stamps every frame with ``time.monotonic()`` when the grab returns, and hands
it to a callback; nothing queues up behind a slow reader because the
consumers keep only the newest frames (see :mod:`.pairing`).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional

from ..errors import SourceError
from ..frame import FramePair, SourceInfo, SourceStats
from ..privacy import redact
from ._cv import READ_TIMEOUT, OPEN_TIMEOUT, capture_props, open_capture
from .base import FrameSource
from .inputs import InputKind
from .pairing import TimedFrame, TimestampPairer

log = logging.getLogger(__name__)

BACKOFF_START = 0.25  # seconds before the first reconnect attempt
BACKOFF_MAX = 4.0  # cap of the doubling delay


class CaptureThread:
    """Grab frames from one live stream on a daemon thread; reopen it when it drops.

    Parameters
    ----------
    kind, name : the input and how messages name it
    role : ``"WL"``, ``"NIR"`` or ``"combined"`` (for messages)
    on_frame : ``callback(TimedFrame)`` for every decoded frame
    on_state : ``callback()`` whenever :attr:`state` changes
    raw : turn BGR conversion off for single-channel streams (NIR)
    cap : an already opened capture (the constructor of the source opened it
        to validate the stream); the thread owns it from now on
    check : ``callback(frame) -> str`` returning a problem with a frame after a
        reconnect (size or format changed), or ``""``

    Attributes
    ----------
    state : ``"ok"``, ``"reconnecting"`` or ``"stopped"``
    message : last problem in plain words
    reconnects : successful reopenings after a drop-out
    attempts : reopen attempts since the last drop-out
    backoff_history : every delay waited before an attempt (seconds)
    """

    def __init__(self, kind: InputKind, name: str, role: str, *,
                 on_frame: Callable[[TimedFrame], None], on_state: Callable[[], None],
                 raw: bool = False, cap=None, check: Optional[Callable] = None,
                 open_timeout: float = OPEN_TIMEOUT, read_timeout: float = READ_TIMEOUT,
                 backoff_start: float = BACKOFF_START, backoff_max: float = BACKOFF_MAX):
        self.kind, self.name, self.role = kind, name, role
        self._on_frame, self._on_state = on_frame, on_state
        self._raw, self._cap, self._check = raw, cap, check
        self._open_timeout, self._read_timeout = open_timeout, read_timeout
        self._backoff_start, self._backoff_max = backoff_start, backoff_max
        self.state = "ok"
        self.message = ""
        self.reconnects = 0
        self.attempts = 0
        self.backoff_history: list[float] = []
        self.frames = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture-{role}", daemon=True)

    def start(self) -> "CaptureThread":
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        if self._cap is not None and self._thread.ident is None:  # never started
            self._cap.release()
            self._cap = None

    # -- the thread ---------------------------------------------------------
    def _set_state(self, state: str, message: str = "") -> None:
        message = redact(message)  # a URL's password is never logged or shown
        changed = (state, message) != (self.state, self.message)
        self.state, self.message = state, message
        if changed:
            if state == "reconnecting" and message:
                log.warning("%s", message)
            self._on_state()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._cap is None and not self._reopen():
                continue
            ok = self._cap.grab()
            t = time.monotonic()
            frame = None
            if ok:
                ok, frame = self._cap.retrieve()
            if not ok or frame is None:
                self._cap.release()
                self._cap = None
                self.attempts = 0
                self._set_state("reconnecting", f"{self.role} stream {self.name}: no frame for "
                                f"{self._read_timeout:g} s (stream dropped); reconnecting")
                continue
            self.frames += 1
            self._on_frame(TimedFrame(t, frame, self.frames))
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self.state = "stopped"

    def _reopen(self) -> bool:
        delay = min(self._backoff_start * (2 ** self.attempts), self._backoff_max)
        self.backoff_history.append(delay)
        if self._stop.wait(delay):
            return False
        self.attempts += 1
        try:
            cap = open_capture(self.kind, name=self.name, raw=self._raw,
                               open_timeout=self._open_timeout, read_timeout=self._read_timeout)
        except SourceError as e:
            nxt = min(self._backoff_start * (2 ** self.attempts), self._backoff_max)
            self._set_state("reconnecting", f"{self.role} stream {e}; attempt {self.attempts} "
                            f"failed, next in {nxt:g} s")
            return False
        if self._stop.is_set():
            cap.release()
            return False
        if self._check is not None:
            ok, frame = cap.read()
            problem = "no frame after reopening" if not ok else self._check(frame)
            if problem:
                cap.release()
                self._set_state("reconnecting", f"{self.role} stream {self.name}: {problem}; "
                                f"attempt {self.attempts} failed")
                return False
        self._cap = cap
        self.reconnects += 1
        self.attempts = 0
        self._set_state("ok", "")
        log.info("%s stream %s: reconnected", self.role, redact(self.name))
        return True


def live_options(spec) -> dict:
    """Timeouts and back-off from ``spec.options`` (seconds)."""
    o = spec.options or {}
    return dict(open_timeout=float(o.get("open_timeout", OPEN_TIMEOUT)),
                read_timeout=float(o.get("read_timeout", READ_TIMEOUT)),
                backoff_start=float(o.get("backoff_start", BACKOFF_START)),
                backoff_max=float(o.get("backoff_max", BACKOFF_MAX)))


def open_live(kind: InputKind, name: str, *, raw: bool, spec):
    """Open a live input, read one frame to learn its format; ``(cap, frame, props)``."""
    opts = live_options(spec)
    cap = open_capture(kind, name=name, raw=raw, open_timeout=opts["open_timeout"],
                       read_timeout=opts["read_timeout"])
    ok, frame = cap.read()
    if not ok or frame is None:
        cap.release()
        raise SourceError(f"{name}: opened, but no frame arrived within {opts['read_timeout']:g} s; "
                          "check that it is sending (and that no other program holds it)")
    return cap, frame, capture_props(cap, kind)


class _LiveSource(FrameSource):
    """What both live sources share: capture threads behind one condition.

    Subclasses set ``_cond``, ``_closed`` and ``captures`` (role ->
    :class:`CaptureThread`) before starting the threads.
    """

    captures: dict

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        for capture in self.captures.values():
            capture.stop()
        self.stats.status = "ended"


class LivePairSource(_LiveSource):
    """Two live streams (WL and NIR) paired by capture time; newest pair wins.

    Built by :func:`nirf_overlay.sources.video.open_pair`; see
    :mod:`.pairing` for the rules.  ``stats.status`` is ``"ok"``,
    ``"reconnecting"`` (WL lost: nothing to show), ``"nir_lost"`` (WL
    continues with ``nir=None``; from :data:`~.pairing.NIR_LOST_AFTER` without NIR
    on, and while the NIR capture reconnects) or ``"ended"`` after :meth:`close`.
    White light never waits for NIR beyond the pairing tolerance.
    """

    def __init__(self, *, info: SourceInfo, wl_kind, wl_name, nir_kind, nir_name,
                 wl_cap, nir_cap, to_wl, to_nir, check_wl, check_nir, spec):
        self.info = info
        self.stats = SourceStats()
        tol = spec.pair_tolerance if spec.pair_tolerance else 0.5 / max(info.fps, 1.0)
        self.info.extra["pair_tolerance_s"] = tol
        self._pairer = TimestampPairer(tol, maxlen=4, grace=min(0.005, tol / 4))
        self._pairer.note_nir(time.monotonic())  # the frame open_live read
        self._nir_name = nir_name
        self._nir_gone_since: Optional[float] = None  # WL time of the first pair "lost"
        self._to_wl, self._to_nir = to_wl, to_nir
        self._cond = threading.Condition()
        self._closed = False
        self._index = 0
        self._last_counts = (0, 0)  # (dropped, unpaired_wl) at the previous pair
        opts = live_options(spec)
        self._wl = CaptureThread(wl_kind, wl_name, "WL", raw=False, cap=wl_cap, check=check_wl,
                                 on_frame=self._on_wl, on_state=self._on_state, **opts)
        self._nir = CaptureThread(nir_kind, nir_name, "NIR", raw=True, cap=nir_cap,
                                  check=check_nir, on_frame=self._on_nir,
                                  on_state=self._on_state, **opts)
        self.captures = {"WL": self._wl, "NIR": self._nir}
        self._wl.start()
        self._nir.start()

    # -- capture callbacks (capture threads) --------------------------------
    def _on_wl(self, item: TimedFrame) -> None:
        with self._cond:
            self._pairer.push_wl(item)
            # decide here, not only in read(): a slow reader must see pairs
            # replaced (dropped), not frames squeezed out of the bounded queues
            self._pairer.poll(time.monotonic())
            self._cond.notify_all()

    def _on_nir(self, item: TimedFrame) -> None:
        with self._cond:
            self._pairer.push_nir(item)
            self._pairer.poll(time.monotonic())
            self._cond.notify_all()

    def _on_state(self) -> None:
        with self._cond:
            nir_lost = self._nir.state != "ok"
            if nir_lost and not self._pairer.nir_lost:
                self._pairer.clear_nir()  # waiting WL frames go out alone, not lost
            self._pairer.nir_lost = nir_lost
            self._update_status()
            self._cond.notify_all()

    def _update_status(self) -> None:
        """``stats.status`` from the captures and the pairs handed out (under the lock)."""
        if self._wl.state != "ok":
            status, message = "reconnecting", self._wl.message
        elif self._nir.state != "ok" or self._nir_gone_since is not None:
            status = "nir_lost"
            message = self._nir.message or (f"NIR stream {self._nir_name}: no frame for "
                                            f"{self._pairer.lost_after:g} s; white light "
                                            "continues without the overlay")
        else:
            status, message = "ok", ""
        self.stats.status = status
        if message:
            self.stats.message = message

    def _note_nir(self, pair) -> None:
        """Say (once) when NIR is lost and when it is back (under the lock)."""
        if pair.status == "lost" and self._nir_gone_since is None:
            self._nir_gone_since = pair.wl.t
            log.warning("NIR stream %s: no frame for %g s; white light continues without the "
                        "overlay", self._nir_name, self._pairer.lost_after)
        elif pair.status == "present" and self._nir_gone_since is not None:
            log.info("NIR stream %s: back after %.1f s without NIR", self._nir_name,
                        pair.wl.t - self._nir_gone_since)
            self._nir_gone_since = None
        self._update_status()

    # -- FrameSource --------------------------------------------------------
    def _sync_stats(self) -> None:
        p, s = self._pairer, self.stats
        s.delivered, s.dropped = p.delivered, p.dropped
        s.unpaired_wl, s.unpaired_nir = p.unpaired_wl, p.unpaired_nir
        s.reconnects = self._wl.reconnects + self._nir.reconnects

    def read(self, timeout: Optional[float] = None) -> Optional[FramePair]:
        end = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._closed:
                    return None
                now = time.monotonic()
                pair = self._pairer.take(now)
                self._sync_stats()
                if pair is not None:
                    self._note_nir(pair)
                    break
                if end is not None and now >= end:
                    raise TimeoutError(f"{self.info.description}: no new frame pair within "
                                       f"{timeout:g} s ({self.stats.status})")
                waits = [d - now for d in (end, self._pairer.deadline()) if d is not None]
                self._cond.wait(max(0.0, min(waits)) if waits else None)
        return self._make_pair(pair)

    def _make_pair(self, pair) -> FramePair:
        wl = self._to_wl(pair.wl.frame)
        nir = self._to_nir(pair.nir.frame) if pair.nir is not None else None
        fp = FramePair(
            wl=wl, nir=nir, nir_bits=self.info.nir_bits, index=self._index,
            wl_time=pair.wl.t, nir_time=pair.nir.t if pair.nir is not None else float("nan"),
            arrival=time.monotonic(), exposure_ms=self.info.exposure_ms, gain=self.info.gain,
            meta={"wl_seq": pair.wl.seq, "nir_seq": pair.nir.seq if pair.nir is not None else None,
                  "status": self.stats.status, "nir_status": pair.status,
                  # what the recorder logs per frame (frames.csv): losses since the last pair
                  "dropped_before": self.stats.dropped - self._last_counts[0],
                  "unpaired_wl_before": self.stats.unpaired_wl - self._last_counts[1],
                  "unpaired": pair.nir is None},
        )
        self._last_counts = (self.stats.dropped, self.stats.unpaired_wl)
        self._index += 1
        return fp

class LiveSingleSource(_LiveSource):
    """One live stream whose every frame yields a pair (a live ``--combined`` stream).

    ``split(frame) -> (wl, nir)``; only the newest frame is kept, so a frame
    replaced before anyone read it counts as ``dropped``.
    """

    def __init__(self, *, info: SourceInfo, kind, name, cap, split, check, spec):
        self.info = info
        self.stats = SourceStats()
        self._split = split
        self._cond = threading.Condition()
        self._slot: Optional[TimedFrame] = None
        self._last_dropped = 0
        self._closed = False
        self._index = 0
        self._thread = CaptureThread(kind, name, "combined", raw=False, cap=cap, check=check,
                                     on_frame=self._on_frame, on_state=self._on_state,
                                     **live_options(spec))
        self.captures = {"combined": self._thread}
        self._thread.start()

    def _on_frame(self, item: TimedFrame) -> None:
        with self._cond:
            if self._slot is not None:
                self.stats.dropped += 1
            self._slot = item
            self._cond.notify_all()

    def _on_state(self) -> None:
        with self._cond:
            t = self._thread
            self.stats.status = "ok" if t.state == "ok" else "reconnecting"
            if t.message:
                self.stats.message = t.message
            self.stats.reconnects = t.reconnects
            self._cond.notify_all()

    def read(self, timeout: Optional[float] = None) -> Optional[FramePair]:
        with self._cond:
            if not self._cond.wait_for(lambda: self._closed or self._slot is not None, timeout):
                raise TimeoutError(f"{self.info.description}: no new frame within {timeout:g} s "
                                   f"({self.stats.status})")
            if self._closed:
                return None
            item, self._slot = self._slot, None
            self.stats.delivered += 1
            self.stats.reconnects = self._thread.reconnects
            dropped_before, self._last_dropped = self.stats.dropped - self._last_dropped, self.stats.dropped
        wl, nir = self._split(item.frame)
        fp = FramePair(wl=wl, nir=nir, nir_bits=self.info.nir_bits, index=self._index,
                       wl_time=item.t, nir_time=item.t, arrival=time.monotonic(),
                       exposure_ms=self.info.exposure_ms, gain=self.info.gain,
                       meta={"seq": item.seq, "status": self.stats.status,
                             "dropped_before": dropped_before})
        self._index += 1
        return fp