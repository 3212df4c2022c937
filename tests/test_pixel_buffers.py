"""The per-pixel path allocates nothing per frame: normalise and composite reuse their buffers.

Measured with tracemalloc (numpy reports its array allocations to it): after two
frames have sized the buffers, one frame's normalisation or compositing may
allocate only Python objects (the result's dataclass, a few scalars), never a
frame, a histogram's iteration buffer or a look-up table.
"""

import tracemalloc

import numpy as np
import pytest

from nirf_overlay.processing.composite import Compositor
from nirf_overlay.processing.normalise import Normaliser
from nirf_overlay.settings import Settings

#: peak bytes one call may allocate: Python objects only (a 320x180 float32 frame
#: is 230 kB, a uint8 mask 58 kB, the LUT's ramp 8 kB, numpy's cast buffer 64 kB)
SMALL = 4096


def _peak(fn) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def _strided(nir):
    """The same counts as a strided view, as a combined source hands them out."""
    return np.repeat(nir, 2, axis=1)[:, ::2]


def _display(phantom, mode):
    """Settings for ``mode`` (colour bar on) and a fresh normaliser and compositor."""
    s = Settings()
    s.set("display.mode", mode)
    s.set("display.show_colorbar", True)
    return s, Normaliser(phantom.calibration()), Compositor()


@pytest.mark.parametrize("mode", ["overlay", "nir", "intensity", "side-by-side", "pip", "wl"])
def test_normalise_and_composite_allocate_no_array_per_frame(phantom, frames, mode):
    s, n, c = _display(phantom, mode)
    peaks = []
    for i, p in enumerate(frames[:6]):
        nir = _strided(p.nir) if i % 2 else p.nir
        peaks.append((
            _peak(lambda: n.process(nir, p.wl.shape, nir_bits=p.nir_bits, settings=s,
                                    median_level=200.0)),
            # a new threshold every frame: the opacity ramp is rebuilt each time
            _peak(lambda: c.render(p.wl, n.filt, lo=0.0, hi=3000.0, threshold=600.0 + i,
                                   settings=s, saturated=n.sat))))
    assert max(max(pk) for pk in peaks[2:]) < SMALL, peaks


@pytest.mark.parametrize("mode", ["overlay", "nir", "intensity"])
def test_fused_sweep_allocates_no_array_per_frame(phantom, frames, mode):
    s, n, c = _display(phantom, mode)
    peaks = []
    for i, p in enumerate(frames[:5]):
        def frame():
            d = c.prepare_fused(p.wl, lo=0.0, hi=3000.0, threshold=600.0 + i, settings=s)
            n.process(p.nir, p.wl.shape, nir_bits=p.nir_bits, settings=s, median_level=200.0,
                      display=d)
            c.finish_fused(d, settings=s)
        peaks.append(_peak(frame))
    assert max(peaks[2:]) < SMALL, peaks

