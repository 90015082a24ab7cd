"""Video quality metrics on ``uint8`` RGB frames ``[T, H, W, 3]``.

A plain metric is a function ``fn(output, reference, mask=None) -> float``.
``mask`` is an optional boolean array ``[T, H, W]``; ``True`` marks the pixels
to measure, so e.g. ``psnr(out, ref, ~edit_mask)`` scores how well the
unedited background was preserved.  These are pure numpy/OpenCV and
deterministic.

A *contextual* metric takes an :class:`EvalContext`:
CLIP scores, masked fidelity, LPIPS and the toy ground-truth metrics (toyworld.metrics).
The registry of names is data (engines.common.metric_table, toyworld.metric_table).  It may
report several values (``Metric.outputs``, e.g. ``toy_edit_success`` also
reports ``toy_edit_colour``), and may be *skipped* with a reason (LPIPS
without local weights): it raises :class:`MetricSkipped` and its values become
the string ``"skipped: <reason>"`` in metrics.json.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from engines.common.metric_table import METRICS

__all__ = [
    "METRICS",
    "EvalContext",
    "MetricSkipped",
    "compute",
    "evaluate_all",
    "flow_warp_error",
    "psnr",
    "ssim",
    "temporal_l1",
    "trajectory_error",
]

MetricFn = Callable[[np.ndarray, "np.ndarray | None", "np.ndarray | None"], float]


@dataclass
class EvalContext:
    output: np.ndarray
    reference: np.ndarray | None = None
    prompt: str = ""
    #: True = pixels the edit should have left alone.
    keep: np.ndarray | None = None
    clip_location: str | None = None
    #: A toy input's ground truth (:class:`ToyTruth`), None for other inputs.
    truth: Any = None
    extras: dict[str, Any] = field(default_factory=dict)
    #: The requested path of the trajectory metric: ``evaluate.trajectory`` as a dict.
    trajectory: dict[str, Any] | None = None
    #: Local LPIPS weights file (resolved when the run was planned); None = not found.
    lpips_weights: str | None = None
    #: Where ``keep`` came from (truth, engine, file); not "none" with ``keep`` None: the edit covers it all.
    keep_source: str = "none"


class MetricSkipped(Exception):
    """A metric that cannot run here (e.g. no local weights); the message says why."""


#: Prefix of a skipped metric's value in metrics.json.
SKIPPED = "skipped: "

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


def _flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense Farneback flow from grey frame ``a`` to ``b`` ([H, W, 2], pixels)."""
    h, w = a.shape
    win = max(5, min(15, (min(h, w) // 4) | 1))
    return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, win, 3, 5, 1.2, 0)


def _sample(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``img`` read at ``p + flow(p)`` (bilinear, border replicated)."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(img, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def flow_warp_error(
    output: np.ndarray,
    reference: np.ndarray | None = None,
    mask: np.ndarray | None = None,
) -> float:
    """Flow warping error of the output (Lai et al. 2018), in [0, 1]; lower is steadier.

    For each pair ``(t, t+1)``: backward flow ``t+1 -> t`` and forward flow
    ``t -> t+1`` by OpenCV Farneback on the output's luma; frame ``t`` is warped
    onto ``t+1``; pixels that fail the forward-backward consistency check
    (Sundaram et al.: ``|f_b + f_f(p + f_b)|^2 > 0.01 (|f_b|^2 + |f_f|^2) + 0.5``)
    are occluded and left out.  The score is the mean absolute difference of
    the remaining pixels, /255.  Needs no weights.  The reference is ignored.
    """
    out = _frames("output", output)
    m = _mask(mask, out)
    if out.shape[0] < 2:
        return 0.0
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in out]
    total, count = 0.0, 0
    for t in range(out.shape[0] - 1):
        fb = _flow(grey[t + 1], grey[t])
        ff = _flow(grey[t], grey[t + 1])
        ff_at = _sample(ff, fb)
        err = ((fb + ff_at) ** 2).sum(-1)
        bound = 0.01 * ((fb**2).sum(-1) + (ff_at**2).sum(-1)) + 0.5
        valid = err <= bound
        if m is not None:
            valid &= m[t + 1]
        if not valid.any():
            continue
        warped = _sample(out[t].astype(np.float32), fb)
        diff = np.abs(out[t + 1].astype(np.float32) - warped).mean(-1) / 255.0
        total += float(diff[valid].sum())
        count += int(valid.sum())
    return total / count if count else 0.0


def trajectory_error(track: np.ndarray, path: np.ndarray, visible: np.ndarray | None = None) -> float:
    """Mean Euclidean distance in pixels between an object's ``track`` and a requested ``path``.

    ``track`` and ``path`` are ``[T, 2]`` points ``(x, y)`` in the same coordinates (e.g. both
    with a camera pan removed).  A frame counts when ``visible[t]`` (the path asks for a point
    there; default: every frame) and both points are finite (NaN in ``track`` = the object was
    not found in that frame).  Returns NaN when no frame counts.
    """
    tr = np.asarray(track, dtype=np.float64)
    pa = np.asarray(path, dtype=np.float64)
    if tr.ndim != 2 or tr.shape[1] != 2 or pa.shape != tr.shape:
        raise ValueError(f"track and path must both be [T, 2]; got {tr.shape} and {pa.shape}")
    use = np.isfinite(tr).all(1) & np.isfinite(pa).all(1)
    if visible is not None:
        vis = np.asarray(visible, dtype=bool)
        if vis.shape != (len(tr),):
            raise ValueError(f"visible must be [T] = [{len(tr)}], got {vis.shape}")
        use &= vis
    if not use.any():
        return float("nan")
    return float(np.linalg.norm(tr[use] - pa[use], axis=1).mean())


def _known(names: Iterable[str]) -> list[str]:
    """``names`` as a list; raises ``KeyError(name)`` for the first unknown one."""
    names = list(names)
    for name in names:
        if name not in METRICS:
            raise KeyError(name)
    return names


def compute(
    names: Iterable[str],
    output: np.ndarray,
    reference: np.ndarray | None,
    mask: np.ndarray | None = None,
) -> dict[str, float]:
    """Compute the named metrics; raises ``KeyError(name)`` for an unknown one.

    All names are checked before anything is computed.
    """
    names = _known(names)
    result: dict[str, float] = {}
    for name in names:
        metric = METRICS[name]
        if metric.needs_reference and reference is None:
            raise ValueError(f"metric {name!r} needs a reference video")
        if metric.contextual:
            raise ValueError(f"metric {name!r} needs an EvalContext; use evaluate_all()")
        result[name] = metric.fn(output, reference, mask)
    return result


def evaluate_all(names: Iterable[str], ctx: Any) -> dict[str, float | str]:
    """Compute every named metric against an ``EvalContext``.

    Values are floats; a metric that raised :class:`MetricSkipped` reports
    ``"skipped: <reason>"`` for each of its keys, and a multi-valued metric may
    report a string for one key when the value does not exist (``"n/a: ..."``,
    e.g. a trajectory error when the object was never found).
    """
    names = _known(names)
    result: dict[str, float | str] = {}
    for name in names:
        metric = METRICS[name]
        try:
            value = metric.fn(ctx) if metric.contextual else metric.fn(ctx.output, ctx.reference, None)
        except MetricSkipped as exc:
            result.update({key: SKIPPED + str(exc) for key in metric.reports})
            continue
        if isinstance(value, dict):
            if set(value) != set(metric.reports):
                raise RuntimeError(f"metric {name!r} returned {sorted(value)}, expected {list(metric.reports)}")
            result.update({k: v if isinstance(v, str) else float(v) for k, v in value.items()})
        else:
            result[name] = float(value)
    return result
