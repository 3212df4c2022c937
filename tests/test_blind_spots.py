"""Tests for what the suite could not see before: each fails if its feature breaks."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from test_gui_window import WAIT_MS, grab, make_window, next_painted  # noqa: E402,F401

RED = np.array([220, 30, 30])


def _red_fraction(strip: np.ndarray) -> float:
    return float(np.mean(np.all(np.abs(strip.astype(int) - RED) <= 12, axis=-1)))


def test_the_transection_plane_band_is_on_the_rendered_picture(qtbot, make_window,
                                                               controlled_source):
    """The red "FLUORESCENCE IN TRANSECTION PLANE" band, checked on the pixels painted:
    across the bottom of the picture while the plane holds fluorescence, gone when cleared."""
    win = make_window(controlled_source())
    frame = next_painted(qtbot, win)
    w, h = frame.pair.size
    rect = win.view.image_rects()[0]
    bottom = slice(int(rect.bottom()) - 8, int(rect.bottom()) - 2)  # inside the band
    cols = slice(int(rect.left()) + 4, int(rect.right()) - 4)
    assert _red_fraction(grab(win)[bottom, cols]) < 0.2  # no plane: no band
    win.model.set("plane.polygon", [[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])
    qtbot.waitUntil(lambda: win.view.hud.plane_flagged and win.view.frame_painted,
                    timeout=WAIT_MS)
    seq = win.view.frame.seq
    next_painted(qtbot, win, seq)
    pic = grab(win)
    band = pic[bottom, cols]
    # red across the width, with the white letters of the warning in its middle
    assert _red_fraction(band) > 0.6, _red_fraction(band)
    middle = pic[int(rect.bottom()) - int(max(14.0, rect.height() / 28.0) * 1.2),
                 int(rect.left() + rect.width() * 0.3): int(rect.left() + rect.width() * 0.7)]
    assert np.any(np.all(middle >= 230, axis=-1)), "the warning's text is painted in the band"
    win.model.set("plane.polygon", [])
    qtbot.waitUntil(lambda: not win.view.hud.plane_set, timeout=WAIT_MS)
    next_painted(qtbot, win, win.view.frame.seq)
    assert _red_fraction(grab(win)[bottom, cols]) < 0.2


def test_the_recorder_copies_a_submitted_buffer(tmp_path):
    """A capture loop reuses one buffer: each frame overwritten right after submit must be
    recorded as it was when submitted (the recorder's copy-on-submit)."""
    from dataclasses import replace

    from nirf_overlay.recording import Recorder, SessionSource
    from test_recording import info_for, synthetic_pairs

    pairs = synthetic_pairs(24, seed=7)
    wl_buf, nir_buf = pairs[0].wl.copy(), pairs[0].nir.copy()  # writable, reused
    rec = Recorder(tmp_path / "s", info_for(), min_free_bytes=0, compact=False)
    for p in pairs:
        wl_buf[:], nir_buf[:] = p.wl, p.nir
        assert rec.submit(replace(p, wl=wl_buf, nir=nir_buf), block=True)
        wl_buf[:] = 0  # the caller scribbles on its buffer at once
        nir_buf[:] = 0
    assert not rec.stop().error
    with SessionSource(tmp_path / "s") as src:
        got = list(src)
    assert len(got) == len(pairs)
    for a, b in zip(pairs, got):
        assert np.array_equal(a.nir, b.nir) and np.array_equal(a.wl, b.wl), a.index
