import os

# Every Qt test runs offscreen; set before anything imports Qt.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".numba-cache"))


# -- Qt hygiene (viewer) -----------------------------------------------------------
# opencv-python points Qt at its own bundled plugins when cv2 is imported; PyQt5
# must not load them.  Import cv2 now and drop those variables before any test
# creates the QApplication.
def _drop_cv2_qt_vars():
    try:
        import cv2  # noqa: F401
    except ImportError:
        return
    for name in ("QT_QPA_PLATFORM_PLUGIN_PATH", "QT_QPA_FONTDIR"):
        if "cv2" in os.environ.get(name, ""):
            os.environ.pop(name, None)


_drop_cv2_qt_vars()

import pytest  # noqa: E402


def leftover_top_level_widgets(before: list) -> list:
    """Top-level widgets alive now that were not in ``before``, after deferred deletes."""
    import sys

    if "PyQt5.QtWidgets" not in sys.modules:
        return []
    from PyQt5.QtCore import QCoreApplication, QEvent
    from PyQt5.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        return []
    QCoreApplication.sendPostedEvents(None, QEvent.DeferredDelete)
    app.processEvents()
    QCoreApplication.sendPostedEvents(None, QEvent.DeferredDelete)
    # compare wrappers by identity: PyQt hands out the same wrapper for the same widget
    return [w for w in app.topLevelWidgets() if not any(w is b for b in before)]


@pytest.fixture(autouse=True)
def _no_leftover_widgets(request):
    """Fail a test that leaves top-level Qt widgets (windows, dialogs) behind.

    Only acts once Qt is in use, so Qt-free tests never create a QApplication.
    Widgets registered with ``qtbot.addWidget`` are closed and deleted by
    pytest-qt before this check runs.
    """
    import sys

    before = []
    if "PyQt5.QtWidgets" in sys.modules:
        from PyQt5.QtWidgets import QApplication

        app = QApplication.instance()
        if app is not None:
            before = list(app.topLevelWidgets())
    yield
    left = leftover_top_level_widgets(before)
    if left:
        names = ", ".join(sorted({type(w).__name__ for w in left}))
        for w in left:  # clean up so the next test starts fresh
            w.close()
            w.deleteLater()
        leftover_top_level_widgets([])
        pytest.fail(f"test left {len(left)} top-level widget(s) behind: {names}", pytrace=False)


def write_image_sequence(folder, frames, ext):
    """Write ``frames`` as ``folder/0000.ext, 0001.ext, ...``; returns the
    ``folder/%04d.ext`` pattern the image-sequence source reads."""
    import cv2

    os.makedirs(folder, exist_ok=True)
    for i, f in enumerate(frames):
        assert cv2.imwrite(os.path.join(folder, f"{i:04d}.{ext}"), f)
    return os.path.join(folder, f"%04d.{ext}")


# -- engine (eng): a small phantom, its frames, and a source whose behaviour a test controls ------
import dataclasses  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

from nirf_overlay.errors import SourceError  # noqa: E402
from nirf_overlay.frame import SourceInfo, SourceStats  # noqa: E402
from nirf_overlay.sources.base import FrameSource  # noqa: E402


_ENGINE_SIZE = (320, 180)
_ENGINE_FPS = 30.0


@pytest.fixture(scope="module")
def phantom_size():
    """``(width, height)`` of the :func:`phantom` fixture's frames."""
    return _ENGINE_SIZE


@pytest.fixture(scope="module")
def phantom():
    """A small phantom procedure (seed 3, 320x180, 30 fps): frames, truth and calibration."""
    from nirf_overlay.phantom import Phantom, PhantomParams

    return Phantom(PhantomParams(seed=3, size=_ENGINE_SIZE, fps=_ENGINE_FPS))


@pytest.fixture(scope="module")
def frames(phantom):
    """The phantom's first 12 FramePairs, rendered once per test module."""
    return [phantom.frame(i) for i in range(12)]


@pytest.fixture
def controlled_source():
    """The class of a real FrameSource over frames in memory whose behaviour a test switches.

    ``controlled_source(frames, live=True, fps=30.0)``: ``live=True`` is paced
    at ``fps`` and ``read(timeout)`` raises TimeoutError while ``stalled`` is
    set; ``live=False`` is seekable and hands out every frame in order, then
    ``None``.  ``nir_lost = True`` hands out pairs without NIR, ``fail = "..."``
    makes ``read`` raise a SourceError with that text; ``reads`` counts reads,
    ``closed`` tells whether it was closed.
    """
    return _ControlledSource


class _ControlledSource(FrameSource):
    """See the ``controlled_source`` fixture."""

    def __init__(self, frames, *, live=True, fps=_ENGINE_FPS):
        self.frames = frames
        w, h = frames[0].size
        self.info = SourceInfo(description="controlled phantom", size=(w, h), fps=fps,
                               nir_bits=frames[0].nir_bits, live=live,
                               frame_count=None if live else len(frames), seekable=not live)
        self.stats = SourceStats()
        self.live = live
        self.stalled = threading.Event()
        self.nir_lost = False
        self.fail: str = ""
        self.reads = 0
        self._i = 0
        self._next = time.monotonic()
        self.closed = False

    def read(self, timeout=None):
        if self.fail:
            raise SourceError(self.fail)
        if self.live:
            if self.stalled.is_set():
                time.sleep(timeout or 0.05)
                self.stats.status = "reconnecting"
                raise TimeoutError("no frame")
            self.stats.status = "nir_lost" if self.nir_lost else "ok"
            delay = self._next - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._next = max(self._next + 1.0 / self.info.fps, time.monotonic() - 0.1)
            src = self.frames[self._i % len(self.frames)]
        else:
            if self._i >= len(self.frames):
                return None
            src = self.frames[self._i]
        pair = dataclasses.replace(src, index=self._i, arrival=time.monotonic(), meta={},
                                   nir=None if self.nir_lost else src.nir,
                                   wl_time=self._i / self.info.fps)
        self._i += 1
        self.reads += 1
        self.stats.delivered += 1
        return pair

    def seek(self, index):
        if self.live:
            return super().seek(index)
        self._i = int(index)

    def close(self):
        self.closed = True
