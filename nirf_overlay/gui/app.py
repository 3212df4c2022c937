"""QApplication setup for the viewer (views only).

opencv-python (the GUI build) sets ``QT_QPA_PLATFORM_PLUGIN_PATH`` and
``QT_QPA_FONTDIR`` to its own bundled Qt when ``cv2`` is imported.  PyQt5 then
loads cv2's platform plugins, built against another Qt, and fails or crashes.
So :func:`clean_qt_environment` removes those two variables when they point
into cv2 before any QApplication exists.
"""

from __future__ import annotations

import os
import sys

_CV2_QT_VARS = ("QT_QPA_PLATFORM_PLUGIN_PATH", "QT_QPA_FONTDIR")


def clean_qt_environment() -> list[str]:
    """Drop the Qt variables cv2 sets on import; return the names removed."""
    try:  # import cv2 first so that it cannot set them again after we clean
        import cv2  # noqa: F401
    except ImportError:
        pass
    removed = []
    for name in _CV2_QT_VARS:
        value = os.environ.get(name, "")
        if value and "cv2" in value.replace("\\", "/").split("/"):
            os.environ.pop(name, None)
            removed.append(name)
    return removed


def make_app(argv=None):
    """The process's QApplication (created once, with the cv2 variables removed)."""
    clean_qt_environment()
    from PyQt5.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        app = QApplication(list(argv) if argv is not None else sys.argv[:1])
        app.setApplicationName("nirf-overlay")
        app.setOrganizationName("nirf-overlay")
    return app


def install_error_hook(show) -> None:
    """Keep the viewer alive when a slot raises, and say so in plain words.

    PyQt5 aborts the whole application on an exception escaping a slot; in the
    OR the picture must go on.  The traceback goes to the log (stderr) for the
    engineers, ``show(text)`` puts one plain line in the window.
    """
    import logging
    import traceback

    from ..errors import NirfError

    log = logging.getLogger("nirf_overlay.gui")

    def hook(exc_type, exc, tb):
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        if isinstance(exc, NirfError):
            text = str(exc)
        else:
            log.error("unexpected error in the viewer:\n%s",
                      "".join(traceback.format_exception(exc_type, exc, tb)))
            first = (str(exc).strip().splitlines() or [exc_type.__name__])[0]
            text = f"internal error ({first}); the viewer continues - details in the log"
        try:
            show(text)
        except Exception:
            pass

    sys.excepthook = hook


def call_later(seconds: float, fn) -> None:
    """Run ``fn`` on the GUI thread after ``seconds`` (keeps Qt out of the CLI module)."""
    from PyQt5.QtCore import QTimer

    QTimer.singleShot(int(seconds * 1000), fn)


def quit_on_stop_signals(app) -> dict:
    """SIGINT, SIGTERM and SIGHUP close the viewer in order instead of raising in a Qt slot.

    The command line's rule (:mod:`nirf_overlay.shutdown`) raises ``Stopped`` where
    the signal lands; in the viewer that is inside some slot, where PyQt5 would
    report it as an error and go on.  Here the handler notes the signal and asks
    the event loop to close every window (a recording stops as on Ctrl+Q) and
    end; ``cli.view`` then writes its outputs and raises ``Stopped`` itself, so the
    exit code and the one line are the other commands'.  Python runs signal
    handlers only between its own bytecodes, so a timer wakes it every 200 ms.
    Returns the dict that receives ``"signum"``.
    """
    import signal

    from PyQt5.QtCore import QTimer

    from ..shutdown import SIGNALS

    got: dict = {}

    def on_signal(signum, frame):
        if "signum" not in got:
            got["signum"] = signum
            QTimer.singleShot(0, app.closeAllWindows)
            QTimer.singleShot(0, app.quit)

    for s in SIGNALS:
        signal.signal(s, on_signal)
    wake = QTimer(app)
    wake.timeout.connect(lambda: None)
    wake.start(200)
    return got
