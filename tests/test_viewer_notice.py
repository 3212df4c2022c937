"""The viewer shows the stream's lasting remark: a 12-bit camera in 16-bit files names
``--nir-bits 12`` in the status bar and the HUD, not only on the terminal.

The remark comes from the normaliser (the one rule: :func:`nirf_overlay.frame.container_bits`)
through ``FrameResult.notice`` and ``EngineStatus.notice``; the files are read by the real
image-sequence source, the frames go through the real pipeline and engine.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from nirf_overlay.engine import Engine  # noqa: E402
from nirf_overlay.settings import Settings  # noqa: E402
from nirf_overlay.sources import SourceSpec, open_source  # noqa: E402

W, H = 96, 64
WAIT_MS = 30000
SAID = "values fit in 12 bits"


def _files(tmp_path, image_sequence, top):
    """Six WL PNGs and six 16-bit NIR TIFFs whose counts stop at ``top``."""
    rng = np.random.default_rng(7)
    wl = [np.full((H, W, 3), 90, np.uint8)] * 6
    nir = [np.where(rng.random((H, W)) < 0.2, top, 900).astype(np.uint16) for _ in range(6)]
    return (image_sequence(str(tmp_path / "wl"), wl, "png"),
            image_sequence(str(tmp_path / "nir"), nir, "tiff"))


def _window(show_window, wl, nir):
    source = open_source(SourceSpec(wl=wl, nir=nir, loop=True))
    assert source.info.nir_bits == 16  # a 16-bit TIFF is read as 16-bit unless told
    return show_window(Engine(source, Settings(), None, loop=True))


def test_a_twelve_bit_stream_read_as_sixteen_names_nir_bits_in_the_viewer(
        qtbot, show_window, tmp_path, image_sequence, caplog):
    wl, nir = _files(tmp_path, image_sequence, top=4095)
    with caplog.at_level(logging.WARNING, logger="nirf_overlay"):
        win = _window(show_window, wl, nir)
        hud = win.view.hud
        qtbot.waitUntil(lambda: SAID in win.engine.status().notice, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: SAID in hud.message, timeout=WAIT_MS)
        line = win.readout.status_line.text()
        assert line.count(SAID) == 1, line
        assert "give --nir-bits 12" in line and "NIR bit depth" in line
        assert not hud.message_is_error  # a remark, not a failure
        # it stays while the source plays: frames after the first say nothing new
        seen = win.engine.status().processed
        qtbot.waitUntil(lambda: win.engine.status().processed >= seen + 8, timeout=WAIT_MS)
        win.readout.refresh(0.0)
        assert win.readout.status_line.text().count(SAID) == 1
        assert SAID in hud.message
        win.close()
    # and the terminal heard it once
    assert sum(SAID in r.getMessage() for r in caplog.records) == 1


def test_a_wide_sixteen_bit_stream_says_nothing(qtbot, show_window, tmp_path, image_sequence):
    wl, nir = _files(tmp_path, image_sequence, top=30000)
    win = _window(show_window, wl, nir)
    qtbot.waitUntil(lambda: win.engine.status().processed >= 8, timeout=WAIT_MS)
    win.readout.refresh(0.0)
    assert win.engine.status().notice == ""
    assert SAID not in win.readout.status_line.text() and SAID not in win.view.hud.message
    win.close()
