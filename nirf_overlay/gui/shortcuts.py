"""Window shortcuts that widgets add without taking a key the window already uses.

Two bindings of one key cancel each other out in Qt (the key then does
nothing and Qt reports an "ambiguous shortcut"), so a widget that brings its
own keys (the replay bar, the help overlay) installs only those still free,
as window shortcuts so that they keep working when the widget is hidden.
"""

from __future__ import annotations

import functools
from typing import Callable, Iterable

from PyQt5.QtCore import QObject, Qt
from PyQt5.QtGui import QKeySequence
from PyQt5.QtWidgets import QAction, QShortcut, QWidget

__all__ = ["bound_keys", "install_free_shortcuts"]


def bound_keys(window: QWidget) -> set[str]:
    """Key sequences (as text) already used by actions and shortcuts of ``window``."""
    keys = set()
    for action in window.findChildren(QAction) + list(window.actions()):
        keys.update(k.toString() for k in action.shortcuts())
    for shortcut in window.findChildren(QShortcut):
        keys.add(shortcut.key().toString())
    keys.discard("")
    return keys


def install_free_shortcuts(window: QWidget, bindings: Iterable[tuple[str, Callable]],
                           owner: QObject) -> list[QShortcut]:
    """Window shortcuts for the ``(key, slot)`` bindings whose keys ``window`` leaves free.

    They are deleted when ``owner`` is (unless ``owner`` is the window itself,
    which deletes them anyway).
    """
    taken = bound_keys(window)
    installed = []
    for key, slot in bindings:
        seq = QKeySequence(key)
        if seq.toString() in taken:
            continue
        sc = QShortcut(seq, window)
        sc.setContext(Qt.WindowShortcut)
        sc.activated.connect(slot)
        installed.append(sc)
    if owner is not window:
        owner.destroyed.connect(functools.partial(_delete, installed))
    return installed


def _delete(shortcuts: list, *_args) -> None:
    for sc in shortcuts:
        try:
            sc.setEnabled(False)
            sc.deleteLater()
        except RuntimeError:  # already gone with the window
            pass
