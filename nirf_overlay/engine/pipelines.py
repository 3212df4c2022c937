"""The pipelines an :class:`~.runner.Engine` runs: the main one and the A/B one.

Both are built, and rebuilt, on the engine's worker thread only: another thread
asking for a change (a new calibration, A/B settings on or off, the kernels
ready) sets a flag under a lock, and the worker carries the changes out at its
next turn (:meth:`Pipelines.apply`), outside the lock, so the GUI never waits on
a pipeline being built.  When the kernels are being prepared behind an open
window (:mod:`.prepare`) there is no main pipeline yet: the changes wait, each
pair is answered with the marked white light (:func:`~.prepare.white_light_result`),
and the pipeline is built with the settings and calibration in force once the
kernels are ready.
"""

from __future__ import annotations

import threading
from typing import Callable, Optional

from .prepare import KernelPreparation, white_light_result


class Pipelines:
    """The main pipeline (``main``, None while the kernels are prepared) and the A/B one (``b``).

    Parameters
    ----------
    factory : ``f(settings, calibration) -> pipeline``
    settings, calibration : what the main pipeline is built with
    pipeline : an existing pipeline to use instead of building one
    prepare : prepare the kernels on a thread first when they are not ready in this
        process (:meth:`start` starts it)
    on_ready : called (on the preparing thread) once the kernels are ready: the engine
        wakes its worker, which then builds the pipeline
    on_failed : ``f(exc)`` when the kernels could not be prepared (the white light goes on)
    """

    def __init__(self, factory: Callable, settings, calibration, *, pipeline=None,
                 prepare: bool = False, on_ready: Optional[Callable[[], None]] = None,
                 on_failed: Optional[Callable[[BaseException], None]] = None):
        self._factory = factory
        self._on_ready = on_ready
        self.calibration = calibration
        self.prep: Optional[KernelPreparation] = None
        if pipeline is None and prepare and not kernels_warm():
            self.main = None  # built on the worker once the kernels are ready
            self.prep = KernelPreparation(self._kernels_ready, on_failed)
        else:
            self.main = pipeline if pipeline is not None else factory(settings, calibration)
        self.b = None
        self.ab_settings = None
        self._lock = threading.Lock()
        self._calibration_changed = False
        self._ab_changed = False

    def start(self) -> None:
        """Start preparing the kernels (when they are prepared at all)."""
        if self.prep is not None:
            self.prep.start()

    # -- changes asked for on other threads ---------------------------------------------------
    def set_calibration(self, calibration) -> None:
        """Rebuild both pipelines with ``calibration`` at the worker's next turn."""
        with self._lock:
            self.calibration = calibration
            self._calibration_changed = True
            self._ab_changed = self.ab_settings is not None

    def set_ab(self, settings_b) -> None:
        """Run a second pipeline with ``settings_b`` (None = off) from the worker's next turn."""
        with self._lock:
            self.ab_settings = None if settings_b is None else settings_b.copy()
            self._ab_changed = True

    def _kernels_ready(self) -> None:
        with self._lock:  # the worker builds the pipeline at its next turn
            self._calibration_changed = True
            self._ab_changed = self.ab_settings is not None
        if self._on_ready is not None:
            self._on_ready()

    @property
    def preparing(self) -> str:
        """What is being prepared before the overlay can start ("" when it is on)."""
        if self.prep is None or self.main is not None:
            return ""
        return self.prep.text or "Preparing the pipeline"

    # -- on the worker ------------------------------------------------------------------------
    def apply(self, settings_now: Callable[[], object]) -> None:
        """Build what was asked for; ``settings_now()`` gives the main pipeline's settings.

        Raises what building a pipeline raised (the engine reports it).  While the
        kernels are prepared nothing is built: the requests wait (their flags stay set).
        """
        if self.prep is not None and not self.prep.ready.is_set():
            return
        with self._lock:
            rebuild, rebuild_b, ab = self._calibration_changed, self._ab_changed, self.ab_settings
            self._calibration_changed = self._ab_changed = False
        if rebuild:
            old, self.main = self.main, self._factory(settings_now().copy(), self.calibration)
            self.main.update_settings(settings_now())  # changed while it was built
            if old is not None:
                old.close()
        if rebuild_b:
            old, self.b = self.b, (None if ab is None else self._factory(ab, self.calibration))
            if old is not None:
                old.close()

    def process(self, pair) -> tuple:
        """``(result, result_b)`` for ``pair``; the marked white light (and no B) while the
        kernels are prepared."""
        if self.main is None:
            cal = self.calibration
            return white_light_result(pair, None if cal is None else cal.mm_per_px), None
        result = self.main.process(pair)
        pb = self.b
        return result, (pb.process(pair) if pb is not None else None)

    def reset(self) -> None:
        """Forget every pipeline's state carried between frames (after a seek)."""
        for p in (self.main, self.b):
            if p is not None:
                p.reset()

    def close(self) -> None:
        if self.prep is not None:
            self.prep.close()
        for p in (self.main, self.b):
            if p is not None:
                p.close()


def kernels_warm() -> bool:
    """The numba kernels are ready in this process (a pipeline builds at once)."""
    from ..processing.warmup import is_warm

    return is_warm()


def default_pipeline_factory(settings, calibration):
    from ..processing.pipeline import Pipeline

    # every frame analysed before it is shown while that keeps up; else the
    # rim analysis on its own thread, so the display never waits (analysis_mode)
    return Pipeline(settings, calibration, async_analysis="auto")
