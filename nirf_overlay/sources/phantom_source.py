"""The phantom procedure as a frame source (``--phantom [--seed N] [--size WxH] [--fps F]``).

Rendering a 1080p frame takes far longer than a 60 fps frame period on two
cores, so the source renders a loop of frames once, in background threads,
and hands them out from memory.  The loop is played forwards and backwards
(ping-pong), so the camera motion never jumps at the wrap; frame indices keep
counting up.

- **Live** (``spec.realtime``): a pacer thread publishes one pair every
  ``1/fps`` s into a one-slot mailbox; :meth:`read` returns the newest pair
  and counts the ones nobody read as dropped.  While the loop is still being
  rendered the source runs at the render speed (like a camera warming up).
- **As fast as possible** (default): pairs ``0 .. frames-1`` in order
  (``spec.options["frames"]``, default 300), seekable.

The arrays in the pairs are the loop's buffers and are marked read-only:
copy before modifying them in place.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Optional

from ..errors import SourceError
from ..frame import FramePair, SourceInfo, SourceStats
from ..phantom import Phantom, PhantomParams
from .base import FrameSource

DEFAULT_SIZE = (1280, 720)
DEFAULT_FPS = 30.0


def _pingpong(i: int, n: int) -> int:
    """Loop position of output frame ``i`` for a loop of ``n`` frames played back and forth."""
    if n <= 1:
        return 0
    period = 2 * n - 2
    m = i % period
    return m if m < n else period - m


class PhantomSource(FrameSource):
    """Frames of a :class:`~nirf_overlay.phantom.Phantom`, pre-rendered as a loop.

    Parameters
    ----------
    params : PhantomParams
    realtime : bool
        Live: paced at ``params.fps``, newest pair wins.  Otherwise as fast as
        possible for ``frames`` frames.
    frames : int
        Frames handed out when not live.
    loop_frames : int or None
        Frames rendered into the loop; default ``loop_seconds * fps`` when live,
        ``frames`` otherwise, capped by ``memory_mb``.
    loop_seconds : float
        Live loop length when ``loop_frames`` is not given.
    memory_mb : float
        Upper bound for the loop's buffers (WL + NIR + truth labels).
    threads : int
        Render threads (the machine it targets has two cores).
    """

    def __init__(self, params=None, *, realtime: bool = False, frames: int = 300,
                 loop_frames: Optional[int] = None, loop_seconds: float = 2.0,
                 memory_mb: float = 768.0, threads: int = 2):
        params = params or PhantomParams()
        if frames < 1:
            raise SourceError(f"phantom frames {frames}: must be at least 1")
        w, h = params.size
        per_frame = w * h * (3 + 2 + 1)  # WL BGR + NIR uint16 + truth labels
        budget = max(2, int(memory_mb * 2 ** 20 // per_frame))
        if loop_frames is None:
            loop_frames = int(round(loop_seconds * params.fps)) if realtime else frames
        n = max(1, min(int(loop_frames), budget, frames if not realtime else 1 << 30))
        # keep the auto-gain step inside the loop, so a short loop still shows it
        loop_s = n / params.fps
        if params.gain_step_s is not None and params.gain_step_s >= loop_s and n > 2:
            params = replace(params, gain_step_s=0.5 * loop_s)
        self.phantom = Phantom(params)
        self.params = self.phantom.params
        self.realtime = bool(realtime)
        self.frames = int(frames)
        self.loop_frames = n
        self.info = SourceInfo(
            description=f"phantom seed {params.seed} {w}x{h} @ {params.fps:g} fps",
            size=(w, h), fps=float(params.fps), nir_bits=12, live=self.realtime,
            frame_count=None if self.realtime else self.frames, device="phantom",
            exposure_ms=params.exposure_ms, gain=params.gain, seekable=not self.realtime,
            extra={"seed": params.seed, "loop_frames": n, "mm_per_px": self.phantom.mm_per_px,
                   "gain_step_s": self.params.gain_step_s},
        )
        self.stats = SourceStats()
        self._loop: list = [None] * n
        self._cond = threading.Condition()
        self._closed = False
        self._error: Optional[BaseException] = None
        self._next = 0
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="phantom-render")
        self._futures = [self._pool.submit(self._render, j) for j in range(n)]
        self._pool.shutdown(wait=False)
        self._slot: Optional[FramePair] = None
        self._slot_read = True
        self._pacer = None
        if self.realtime:
            self._pacer = threading.Thread(target=self._pace, name="phantom-pacer", daemon=True)
            self._pacer.start()

    @classmethod
    def from_spec(cls, spec) -> "PhantomSource":
        opts = dict(spec.options or {})
        overrides = dict(opts.pop("params", {}) or {})
        try:
            params = PhantomParams(seed=int(spec.seed), size=tuple(spec.size or DEFAULT_SIZE),
                                   fps=float(spec.fps or DEFAULT_FPS), **overrides)
        except TypeError as e:
            raise SourceError(f"phantom: {e}") from None
        kwargs = {k: opts[k] for k in ("frames", "loop_frames", "loop_seconds", "memory_mb", "threads")
                  if k in opts}
        return cls(params, realtime=spec.realtime, **kwargs)

    # -- rendering -------------------------------------------------------------
    def _render(self, j: int) -> None:
        if self._closed:
            return
        try:
            wl, nir, truth, _ = self.phantom.render(j)
            for a in (wl, nir, truth.labels):
                a.setflags(write=False)
            item = (wl, nir, truth)
        except BaseException as e:  # surfaced to the reader, not lost in a thread
            with self._cond:
                self._error = e
                self._cond.notify_all()
            return
        with self._cond:
            self._loop[j] = item
            self._cond.notify_all()

    def _wait_rendered(self, j: int, timeout: Optional[float]) -> Optional[tuple]:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._loop[j] is None:
                if self._error is not None:
                    raise self._error
                if self._closed:
                    return None
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError("phantom: frame not rendered yet")
                self._cond.wait(left if left is not None else 0.5)
            return self._loop[j]

    @property
    def rendered(self) -> int:
        """How many loop frames are ready."""
        return sum(x is not None for x in self._loop)

    def wait_ready(self, timeout: Optional[float] = None) -> bool:
        """Block until the whole loop is rendered (True) or ``timeout`` passes (False)."""
        try:
            self._wait_rendered(self.loop_frames - 1, timeout)
            for j in range(self.loop_frames):
                self._wait_rendered(j, timeout)
        except TimeoutError:
            return False
        return True

    def _pair(self, i: int, item, t_wl: float) -> FramePair:
        wl, nir, truth = item
        return FramePair(
            wl=wl, nir=nir, nir_bits=12, index=i, wl_time=t_wl, nir_time=t_wl,
            arrival=time.monotonic(), exposure_ms=self.params.exposure_ms, gain=truth.gain,
            truth=truth, meta={"phantom_seed": self.params.seed,
                               "loop_index": _pingpong(i, self.loop_frames)},
        )

    # -- live pacing -------------------------------------------------------------
    def _pace(self) -> None:
        period = 1.0 / self.params.fps
        i = 0
        t_next = time.monotonic()
        while not self._closed:
            j = _pingpong(i, self.loop_frames)
            try:
                item = self._wait_rendered(j, None)
            except BaseException:
                return  # the error is kept in self._error for read()
            if item is None:
                return
            now = time.monotonic()
            if now < t_next:
                time.sleep(t_next - now)
            else:
                t_next = now  # stalled (warming up) or late: restart the clock, no burst
            t_cap = time.monotonic()
            pair = self._pair(i, item, t_cap)
            with self._cond:
                if not self._slot_read:
                    self.stats.dropped += 1
                self._slot, self._slot_read = pair, False
                self._cond.notify_all()
            i += 1
            t_next += period

    def _read_live(self, timeout: Optional[float]) -> Optional[FramePair]:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._closed or self._slot_read:
                if self._closed:
                    return None
                if self._error is not None:
                    raise SourceError(f"phantom: rendering failed: {self._error}")
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError("phantom: no new frame")
                self._cond.wait(left if left is not None else 0.5)
            pair = self._slot
            self._slot_read = True
        pair.arrival = time.monotonic()
        self.stats.delivered += 1
        return pair

    # -- FrameSource -------------------------------------------------------------
    def read(self, timeout: Optional[float] = None) -> Optional[FramePair]:
        if self.realtime:
            return self._read_live(timeout)
        if self._closed or self._next >= self.frames:
            if not self._closed:
                self.stats.status = "ended"
            return None
        i = self._next
        try:
            item = self._wait_rendered(_pingpong(i, self.loop_frames), None)
        except TimeoutError:  # pragma: no cover - no timeout given
            return None
        except KeyboardInterrupt:  # a stop signal (shutdown.Stopped) is not a rendering failure
            raise
        except BaseException as e:
            raise SourceError(f"phantom: rendering failed: {e}") from e
        if item is None:
            return None
        self._next = i + 1
        self.stats.delivered += 1
        return self._pair(i, item, i / self.params.fps)

    def seek(self, index: int) -> None:
        if self.realtime:
            raise NotImplementedError(f"{self.info.description}: a live source cannot seek")
        self._next = max(0, min(int(index), self.frames))

    def own_calibration(self):
        """The phantom camera's :class:`~nirf_overlay.calibration.Calibration`."""
        return self.phantom.calibration()

    def close(self) -> None:
        if self._closed:
            return
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for f in self._futures:
            f.cancel()
        if self._pacer is not None and self._pacer is not threading.current_thread():
            self._pacer.join(timeout=2.0)
        with self._cond:  # free the loop (up to memory_mb) even if the source object lives on
            self._loop = [None] * self.loop_frames
            self._slot = None
        self.stats.status = "ended"
