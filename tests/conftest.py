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


@pytest.fixture(autouse=True)
def _own_config_dir(tmp_path_factory, monkeypatch):
    """Every test's QSettings (window layout, recent sources) and presets in a fresh temp
    folder, never the user's config, and no layout a previous test's window left behind."""
    monkeypatch.setenv("NIRF_OVERLAY_CONFIG_DIR", str(tmp_path_factory.mktemp("config")))


def write_image_sequence(folder, frames, ext):
    """Write ``frames`` as ``folder/0000.ext, 0001.ext, ...``; returns the
    ``folder/%04d.ext`` pattern the image-sequence source reads."""
    import cv2

    os.makedirs(folder, exist_ok=True)
    for i, f in enumerate(frames):
        assert cv2.imwrite(os.path.join(folder, f"{i:04d}.{ext}"), f)
    return os.path.join(folder, f"%04d.{ext}")


# -- phantom frames and a source the test controls (engine and viewer tests) -------------------
PHANTOM_SIZE = (320, 180)
PHANTOM_FPS = 30.0
PHANTOM_FRAMES = 12


@pytest.fixture(scope="session")
def phantom():
    """A seeded 320x180, 30 fps phantom: frames with known truth, and its camera's calibration."""
    from nirf_overlay.phantom import Phantom, PhantomParams

    return Phantom(PhantomParams(seed=3, size=PHANTOM_SIZE, fps=PHANTOM_FPS))


@pytest.fixture(scope="session")
def phantom_size():
    """``(width, height)`` of the :func:`phantom` fixture's frames."""
    return PHANTOM_SIZE


@pytest.fixture(scope="session")
def frames(phantom):
    """The phantom's first 12 frame pairs (FramePair, with ``truth``)."""
    return [phantom.frame(i) for i in range(PHANTOM_FRAMES)]


@pytest.fixture
def controlled_source(frames):
    """``make(*, live=True, fps=30.0, markers=()) -> ControlledSource`` over :func:`frames`.

    A real FrameSource whose behaviour the test switches: ``stalled`` (an
    Event: reads time out), ``nir_lost`` (pairs without NIR), ``fail`` (reads
    raise that message); ``live=False`` makes it seekable, every frame in
    order and None at the end.  ``reads``, ``seeks`` and ``closed`` tell what
    was done to it.
    """
    import dataclasses
    import threading
    import time

    from nirf_overlay.errors import SourceError
    from nirf_overlay.frame import SourceInfo, SourceStats
    from nirf_overlay.sources.base import FrameSource

    class ControlledSource(FrameSource):
        def __init__(self, *, live=True, fps=PHANTOM_FPS, markers=()):
            self.frames = frames
            w, h = frames[0].size
            self.info = SourceInfo(description="controlled phantom", size=(w, h), fps=fps,
                                   nir_bits=frames[0].nir_bits, live=live,
                                   frame_count=None if live else len(frames),
                                   seekable=not live)
            self.stats = SourceStats()
            self.markers = list(markers)
            self.live = live
            self.stalled = threading.Event()
            self.nir_lost = False
            self.fail = ""
            self.reads = 0
            self.seeks: list = []
            self.closed = False
            self._i = 0
            self._next = time.monotonic()

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
            self.seeks.append(int(index))
            self._i = int(index)

        def close(self):
            self.closed = True

    def make(**kwargs):
        return ControlledSource(**kwargs)

    return make


@pytest.fixture
def show_window(qtbot, tmp_path):
    """``show(engine) -> MainWindow``: the viewer on ``engine``, 900x600, shown and exposed,
    with its snapshots, recordings and presets in ``tmp_path`` (pytest-qt, offscreen)."""
    def show(engine):
        from nirf_overlay.gui.main_window import MainWindow

        win = MainWindow(engine, snapshot_dir=tmp_path / "snaps", recording_dir=tmp_path / "rec",
                         presets_dir=tmp_path / "presets")
        qtbot.addWidget(win)
        win.resize(900, 600)
        win.show()
        qtbot.waitExposed(win)
        return win
    return show


@pytest.fixture(scope="session")
def replay_session(tmp_path_factory):
    """A 20-frame phantom session recorded with its own settings and one marker.

    Returns ``(path, nir frames that went in, the recorded Settings)``; the
    settings differ from the defaults in ``display.mode`` ("nir") and
    ``segment.threshold`` (2.5), and the marker sits at frame 12.
    """
    from nirf_overlay.phantom import PhantomParams
    from nirf_overlay.recording import Recorder
    from nirf_overlay.settings import Settings
    from nirf_overlay.sources.phantom_source import PhantomSource

    recorded = Settings()
    recorded.display.mode = "nir"
    recorded.segment.threshold = 2.5
    out = tmp_path_factory.mktemp("replay") / "case"
    nir = []
    with PhantomSource(PhantomParams(seed=5, size=PHANTOM_SIZE, fps=PHANTOM_FPS),
                       frames=20) as src:
        rec = Recorder(out, src.info, recorded)
        for pair in src:
            assert rec.submit(pair, block=True, timeout=30)
            nir.append(pair.nir.copy())
            if pair.index == 12:
                rec.log_event("marker", frame=12, label="close to the rim")
        status = rec.stop()
    assert status.frames_written == 20
    return out, nir, recorded


@pytest.fixture
def leftover_widgets():
    """:func:`leftover_top_level_widgets`, for the test that checks the check itself."""
    return leftover_top_level_widgets


# -- recorded phantom sessions (recording, replay, batch) ----------------------------
@pytest.fixture(scope="session")
def record_phantom_session():
    """Record a phantom into a new session directory through the real Recorder.

    ``record_phantom_session(out, *, seed=5, size=(320, 180), frames=20, fps=30.0,
    settings=None, calibrated=True, markers=None, **recorder_options) -> pairs``:
    every frame is submitted (waiting for room, none refused), with the
    phantom's own calibration unless ``calibrated`` is False and a marker event
    at each ``{frame: label}`` of ``markers``; returns the recorded FramePairs
    (read-only phantom buffers, the known truth of the session).
    """
    def record(out, *, seed=5, size=(320, 180), frames=20, fps=30.0, settings=None,
               calibrated=True, markers=None, **recorder_options):
        from nirf_overlay.phantom import PhantomParams
        from nirf_overlay.recording import Recorder
        from nirf_overlay.sources.phantom_source import PhantomSource

        recorder_options = {"min_free_bytes": 0, "stop_free_bytes": 0, **recorder_options}
        pairs = []
        with PhantomSource(PhantomParams(seed=seed, size=size, fps=fps), frames=frames) as src:
            calibration = src.own_calibration() if calibrated else None
            rec = Recorder(out, src.info, settings, calibration, **recorder_options)
            for pair in src:
                assert rec.submit(pair, block=True, timeout=30)
                pairs.append(pair)
                if markers and pair.index in markers:
                    rec.log_event("marker", frame=pair.index, label=markers[pair.index])
            status = rec.stop(wait_compaction=True)
        assert status.error == "" and status.frames_safe == frames, status
        return pairs

    return record


@pytest.fixture(scope="session")
def image_sequence():
    """:func:`write_image_sequence`, for tests that write image-sequence sources
    (session scope, so module- and session-scoped fixtures can use it too)."""
    return write_image_sequence


@pytest.fixture(scope="session")
def charuco_sequences(tmp_path_factory):
    """A 7x5 ChArUco board (DICT_4X4_50, 6 mm squares) in three poses, written as
    a WL PNG and a NIR TIFF sequence (640x480, 12-bit NIR) through a known
    WL-to-NIR homography; the first pose is fronto-parallel at 6 px per mm.

    Returns a dict: ``wl``, ``nir`` (sequence patterns), ``charuco`` (the
    :class:`~nirf_overlay.calibration.registration.Charuco`), ``h_true``,
    ``square_mm``, ``px_per_mm``, ``size``.
    """
    import numpy as np

    from nirf_overlay.calibration.registration import Charuco
    from nirf_overlay.calibration.synthetic import pose_homography, render_pair

    ch = Charuco(board=(7, 5), dictionary="DICT_4X4_50")
    h_true = np.array([[0.9, 0.02, 20.0], [-0.015, 0.92, 12.0], [3e-5, -2e-5, 1.0]])
    kw = dict(board=ch.board, square_mm=6.0)
    poses = [pose_homography((320, 240), 6.0, **kw),
             pose_homography((170, 140), 5.0, angle_deg=12, tilt_deg=20, **kw),
             pose_homography((470, 330), 5.0, angle_deg=-9, tilt_deg=-15, **kw)]
    rng = np.random.default_rng(22)
    pairs = [render_pair(p, h_true, wl_size=(640, 480), nir_size=(640, 480), square_mm=6.0,
                         rng=rng, charuco=ch) for p in poses]
    d = tmp_path_factory.mktemp("charuco")
    return {"wl": write_image_sequence(str(d / "wl"), [p[0] for p in pairs], "png"),
            "nir": write_image_sequence(str(d / "nir"), [p[1] for p in pairs], "tiff"),
            "charuco": ch, "h_true": h_true, "square_mm": 6.0, "px_per_mm": 6.0,
            "size": (640, 480)}


# -- numba kernels: compiled (or loaded from the cache) once per test session ---------------
@pytest.fixture(scope="session", autouse=True)
def warm_kernels():
    """Every pipeline kernel compiled or loaded from NUMBA_CACHE_DIR before the first test,
    so no test's timed wait pays a cold compile (subprocesses share the same cache)."""
    from nirf_overlay.processing.pipeline import warm_up

    warm_up()
