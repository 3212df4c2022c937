"""What Qt sees here (version, platform plugin, screens, config and presets folders), as JSON.

Run as ``python -m nirf_overlay.gui.probe`` by ``nirf-overlay info`` in a child
process, because a Qt application that finds no screen can abort its process.
"""

import json
import sys

from PyQt5.QtCore import PYQT_VERSION_STR, QT_VERSION_STR
from PyQt5.QtWidgets import QApplication

from .presets import default_presets_dir


def main() -> None:
    app = QApplication(sys.argv[:1])
    print(json.dumps({
        "qt": QT_VERSION_STR, "pyqt": PYQT_VERSION_STR, "platform": app.platformName(),
        "screens": [f"{s.name() or 'screen'} {s.size().width()}x{s.size().height()} "
                    f"@{s.devicePixelRatio():g}" for s in app.screens()],
        "config": str(default_presets_dir().parent),
        "presets": str(default_presets_dir()),
    }))


if __name__ == "__main__":
    main()
