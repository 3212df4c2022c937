"""The Qt views on top of the Qt-free core (only this package imports PyQt5)."""
