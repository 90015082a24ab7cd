"""Video quality metrics on ``uint8`` RGB frames ``[T, H, W, 3]``.

Every metric is a function ``fn(output, reference, mask=None) -> float``.
``mask`` is an optional boolean array ``[T, H, W]``; ``True`` marks the pixels
to measure, so e.g. ``psnr(out, ref, ~edit_mask)`` scores how well the
unedited background was preserved.  All metrics are pure numpy/OpenCV and
deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["METRICS", "Metric", "compute", "psnr", "ssim", "temporal_l1"]

MetricFn = Callable[[np.ndarray, "np.ndarray | None", "np.ndarray | None"], float]

#: PSNR reported for identical inputs (and the cap for near-identical ones).
PSNR_CAP_DB = 100.0

_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_SSIM_C1 = (0.01 * 255) ** 2
_SSIM_C2 = (0.03 * 255) ** 2


def _frames(name: str, arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"{name} must be shaped [T, H, W, 3], got {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8, got {arr.dtype}")
    return arr


def _pair(output: np.ndarray, reference: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    out = _frames("output", output)
    if reference is None:
        raise ValueError("this metric needs a reference video")
    ref = _frames("reference", reference)
    if out.shape != ref.shape:
        raise ValueError(f"output {out.shape} and reference {ref.shape} differ in shape")
    return out, ref


def _mask(mask: np.ndarray | None, out: np.ndarray) -> np.ndarray | None:
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.shape != out.shape[:3]:
        raise ValueError(f"mask must be shaped {out.shape[:3]} ([T, H, W]), got {m.shape}")
    m = m.astype(bool, copy=False)
    if not m.any():
        raise ValueError("mask selects no pixels")
    return m


def psnr(output: np.ndarray, reference: np.ndarray | None, mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio in dB over all channels of the (masked) pixels.

    ``10 * log10(255**2 / MSE)``, capped at :data:`PSNR_CAP_DB` (100 dB), which is
    also the value for identical inputs.
    """
    out, ref = _pair(output, reference)
    m = _mask(mask, out)
    diff = out.astype(np.float64) - ref.astype(np.float64)
    sq = diff * diff
    mse = float(sq[m].mean()) if m is not None else float(sq.mean())
    if mse <= 0.0:
        return PSNR_CAP_DB
    return float(min(PSNR_CAP_DB, 10.0 * np.log10(255.0**2 / mse)))


def _luma(frames: np.ndarray) -> np.ndarray:
    """BT.601 luma in [0, 255] as float64 ``[T, H, W]``."""
    f = frames.astype(np.float64)
    return 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]


def _blur(img: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(
        img,
        (_SSIM_WINDOW, _SSIM_WINDOW),
        sigmaX=_SSIM_SIGMA,
        sigmaY=_SSIM_SIGMA,
        borderType=cv2.BORDER_REFLECT_101,
    )


def ssim_map(output: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM ``[T, H, W]`` on luma (Wang et al. 2004).

    Local statistics use an 11x11 Gaussian window (sigma 1.5) with mirrored
    (reflect-101) borders, so the map has the frame size; ``C1 = (0.01*255)^2``,
    ``C2 = (0.03*255)^2``.
    """
    out, ref = _pair(output, reference)
    x_all, y_all = _luma(out), _luma(ref)
    maps = np.empty(x_all.shape, dtype=np.float64)
    for t in range(x_all.shape[0]):
        x, y = x_all[t], y_all[t]
        mu_x, mu_y = _blur(x), _blur(y)
        var_x = _blur(x * x) - mu_x * mu_x
        var_y = _blur(y * y) - mu_y * mu_y
        cov = _blur(x * y) - mu_x * mu_y
        num = (2 * mu_x * mu_y + _SSIM_C1) * (2 * cov + _SSIM_C2)
        den = (mu_x * mu_x + mu_y * mu_y + _SSIM_C1) * (var_x + var_y + _SSIM_C2)
        maps[t] = num / den
    return maps


def ssim(output: np.ndarray, reference: np.ndarray | None, mask: np.ndarray | None = None) -> float:
    """Mean structural similarity on luma; with ``mask``, the SSIM map's mean over it.

    1.0 for identical inputs.
    """
    out, ref = _pair(output, reference)
    m = _mask(mask, out)
    maps = ssim_map(out, ref)
    return float(maps[m].mean()) if m is not None else float(maps.mean())


def temporal_l1(
    output: np.ndarray,
    reference: np.ndarray | None = None,
    mask: np.ndarray | None = None,
) -> float:
    """Mean absolute change between consecutive output frames, scaled to [0, 1].

    Lower means temporally smoother.  The reference is ignored.  With ``mask``,
    a pixel of the pair ``(t, t+1)`` counts when it is masked in both frames.
    A single-frame clip scores 0.0.
    """
    out = _frames("output", output)
    m = _mask(mask, out)
    if out.shape[0] < 2:
        return 0.0
    f = out.astype(np.float64)
    diff = np.abs(f[1:] - f[:-1]) / 255.0  # [T-1, H, W, 3]
    if m is None:
        return float(diff.mean())
    pair = m[1:] & m[:-1]
    if not pair.any():
        raise ValueError("mask selects no pixel in two consecutive frames")
    return float(diff[pair].mean())


@dataclass(frozen=True)
class Metric:
    """A registered metric and how to read it."""

    name: str
    fn: MetricFn
    description: str
    higher_is_better: bool
    needs_reference: bool


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "psnr",
            psnr,
            "Peak signal-to-noise ratio vs the reference, dB (capped at 100).",
            higher_is_better=True,
            needs_reference=True,
        ),
        Metric(
            "ssim",
            ssim,
            "Mean SSIM on luma vs the reference (11x11 Gaussian window, sigma 1.5).",
            higher_is_better=True,
            needs_reference=True,
        ),
        Metric(
            "temporal_l1",
            temporal_l1,
            "Mean absolute difference between consecutive output frames, in [0, 1].",
            higher_is_better=False,
            needs_reference=False,
        ),
    )
}


def compute(
    names: Iterable[str],
    output: np.ndarray,
    reference: np.ndarray | None,
    mask: np.ndarray | None = None,
) -> dict[str, float]:
    """Compute the named metrics; raises ``KeyError(name)`` for an unknown one.

    All names are checked before anything is computed.
    """
    names = list(names)
    for name in names:
        if name not in METRICS:
            raise KeyError(name)
    result: dict[str, float] = {}
    for name in names:
        metric = METRICS[name]
        if metric.needs_reference and reference is None:
            raise ValueError(f"metric {name!r} needs a reference video")
        result[name] = metric.fn(output, reference, mask)
    return result
