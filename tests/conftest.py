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
