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
