"""Colour maps (256-entry BGR tables) and the drawing colours that go with each.

* ``green``   tower style: dark to bright green, whitening only at the very top
* ``viridis``, ``inferno``: perceptually uniform (OpenCV's tables, identical to matplotlib's)
* ``cividis``: perceptually uniform and readable with red-green colour blindness
* ``magenta``: dark to bright magenta (some towers' alternative to green)

Each map has a :class:`Palette` of colours that do not occur in it: the
saturation colour, the rim outline and the transection-plane polygon (quiet
and flagged), so the four never look alike on that map.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from ..settings import COLORMAPS

_CV2_MAPS = {"viridis": cv2.COLORMAP_VIRIDIS, "inferno": cv2.COLORMAP_INFERNO,
             "cividis": cv2.COLORMAP_CIVIDIS}


@dataclass(frozen=True)
class Palette:
    """BGR drawing colours for one colour map."""

    saturation: tuple
    rim: tuple
    plane: tuple
    plane_flagged: tuple


PALETTES = {
    "green": Palette(saturation=(255, 0, 255), rim=(0, 255, 255), plane=(255, 255, 255),
                     plane_flagged=(0, 0, 255)),
    "viridis": Palette(saturation=(255, 0, 255), rim=(255, 255, 255), plane=(160, 160, 160),
                       plane_flagged=(0, 0, 255)),
    "inferno": Palette(saturation=(255, 255, 0), rim=(0, 255, 0), plane=(255, 255, 255),
                       plane_flagged=(255, 0, 0)),
    "cividis": Palette(saturation=(255, 0, 255), rim=(255, 255, 255), plane=(160, 160, 160),
                       plane_flagged=(0, 128, 255)),
    "magenta": Palette(saturation=(255, 255, 0), rim=(0, 255, 255), plane=(255, 255, 255),
                       plane_flagged=(0, 0, 255)),
}


@lru_cache(maxsize=None)
def colormap(name: str) -> np.ndarray:
    """(256, 3) uint8 BGR table of colour map ``name`` (read-only)."""
    if name not in COLORMAPS:
        raise ValueError(f"unknown colour map {name!r}; choose from {', '.join(COLORMAPS)}")
    t = np.linspace(0.0, 1.0, 256)
    if name in _CV2_MAPS:
        lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(256, 1), _CV2_MAPS[name])
        lut = lut.reshape(256, 3)
    elif name == "green":
        g = 70 + 185 * np.clip(t / 0.85, 0, 1)
        w = 150 * np.clip((t - 0.85) / 0.15, 0, 1)  # a hint of white at the very top
        lut = np.stack([w, g, w], axis=1)
    else:  # magenta = blue + red
        m = 70 + 185 * t
        lut = np.stack([m, 0.25 * m * t, m], axis=1)
    lut = np.ascontiguousarray(np.round(lut).astype(np.uint8))
    lut.setflags(write=False)
    return lut


def gray_map() -> np.ndarray:
    """(256, 3) uint8 grey ramp for the monochrome NIR view."""
    g = np.arange(256, dtype=np.uint8)
    return np.ascontiguousarray(np.stack([g, g, g], axis=1))


def palette(name: str) -> Palette:
    return PALETTES[name]
