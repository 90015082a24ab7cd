"""Edit regions drawn in a spec, as pixel masks: one rasterisation for the engines and their checks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["box_region"]


def box_region(box: Sequence[float], h: int, w: int) -> np.ndarray:
    """``[H, W]`` bool, True inside ``[x0, y0, x1, y1]`` (pixels, corners rounded to the pixel grid; may
    be empty when the box is thinner than half a pixel: the checks refuse such a box)."""
    x0, y0, x1, y1 = box
    region = np.zeros((h, w), bool)
    region[round(y0) : round(y1), round(x0) : round(x1)] = True
    return region
