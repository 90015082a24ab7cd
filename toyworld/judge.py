"""Ground-truth judges for generated toy samples: pixel and mask statistics only, no model.

:func:`judge_object` looks for an intended object (colour, shape, motion) in frames
``[T,H,W,3]`` (uint8):

1. colour: per frame, :func:`toyworld.scene.colour_mask` for the colour, keeping the largest
   8-connected component; the object is *present* in a frame if that component has at least
   ``min_pixels`` pixels, and ``colour`` is true if it is present in at least ``min_present``
   of the frames (random noise gives only scattered specks, so it fails);
2. shape: :func:`toyworld.scene.classify_shape` of the component in each present frame, majority
   vote (ties -> ``"unknown"``);
3. motion: the component centroids over the present frames form a track, optionally
   compensated for a known camera pan (``pan``, the nominal drift of :mod:`toyworld.scene`), then
   :func:`toyworld.scene.motion_direction`.

Returns ``{"colour": bool, "shape": bool, "motion": bool, "all": bool, "present_frac",
"shape_pred", "motion_pred", "track"}``.  :func:`judge_caption` judges every object of a toy
caption; :func:`judge_reconstruction` is the uint8 PSNR (dB) of a reconstruction.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import cv2
import numpy as np

from toyworld.scene import PAN_MAX, PAN_PER_FRAME, classify_shape, colour_mask, motion_direction, parse_caption

__all__ = ["judge_caption", "judge_object", "judge_reconstruction", "object_masks", "pan_drift"]


def _largest_component(m: np.ndarray) -> np.ndarray:
    n_lab, labels, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
    if n_lab <= 1:
        return np.zeros_like(m, dtype=bool)
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == best


def object_masks(
    frames: np.ndarray, colour: str, min_pixels: int = 20, tol: float = 60.0
) -> tuple[np.ndarray, np.ndarray]:
    """``(masks [T,H,W] bool, present [T] bool)``: largest component of ``colour`` per frame."""
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    cm = colour_mask(frames, colour, tol=tol)
    masks = np.stack([_largest_component(m) for m in cm])
    present = masks.reshape(len(masks), -1).sum(-1) >= min_pixels
    return masks, present


def pan_drift(pan: str, frames: int, width: int, height: int) -> np.ndarray:
    """Nominal image-space drift ``[T, 2]`` (pixels) of a toy camera pan (as in toyworld.scene)."""
    off = np.zeros((frames, 2))
    if pan == "none" or frames < 2:
        return off
    axis = 0 if pan in ("left", "right") else 1
    dim = width if axis == 0 else height
    total = min(PAN_MAX, PAN_PER_FRAME * (frames - 1)) * dim
    sign = 1.0 if pan in ("left", "up") else -1.0
    off[:, axis] = sign * total * np.arange(frames) / (frames - 1)
    return off


def judge_object(
    frames: np.ndarray,
    colour: str,
    shape: str | None = None,
    motion: str | None = None,
    pan: str = "none",
    min_pixels: int = 20,
    min_present: float = 0.5,
) -> dict[str, Any]:
    """Judge one intended object in uint8 frames ``[T,H,W,3]`` (or one image ``[H,W,3]``).

    ``shape``/``motion`` ``None`` are not judged (reported as ``None``); ``all`` is the
    conjunction of the judged attributes.
    """
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [T,H,W,3], got {frames.shape}")
    t_n, h, w = frames.shape[:3]
    masks, present = object_masks(frames, colour, min_pixels=min_pixels)
    frac = float(present.mean())
    ok_colour = bool(present.any()) and frac >= min_present
    res: dict[str, Any] = {"colour": ok_colour, "present_frac": frac, "shape": None, "motion": None}
    shapes = [classify_shape(masks[t]) for t in range(t_n) if present[t]]
    votes = Counter(shapes).most_common()
    shape_pred = "unknown"
    if votes and (len(votes) == 1 or votes[0][1] > votes[1][1]):
        shape_pred = votes[0][0]
    res["shape_pred"] = shape_pred
    if shape is not None:
        res["shape"] = ok_colour and shape_pred == shape
    track = np.full((t_n, 2), np.nan)
    for t in range(t_n):
        if present[t]:
            ys, xs = np.nonzero(masks[t])
            track[t] = (xs.mean(), ys.mean())
    track = track - pan_drift(pan, t_n, w, h)
    res["track"] = track
    motion_pred = motion_direction(np.nan_to_num(track), visible=present) if present.sum() >= 1 else "unknown"
    res["motion_pred"] = motion_pred
    if motion is not None:
        res["motion"] = ok_colour and motion_pred == motion
    judged = [v for k, v in res.items() if k in ("colour", "shape", "motion") and v is not None]
    res["all"] = all(judged)
    return res


def judge_caption(frames: np.ndarray, text: str, pan: str = "none", **kw: Any) -> list[dict[str, Any]]:
    """:func:`judge_object` for every object named in a toy caption (size is not judged).
    A caption's own ``camera panning X`` is used for ``pan`` unless given."""
    if pan == "none" and "camera panning" in text:
        pan = text.rsplit("camera panning", 1)[1].strip().split()[0]
    return [judge_object(frames, o["colour"], o["shape"], o["motion"], pan=pan, **kw) for o in parse_caption(text)]


def judge_reconstruction(reference: np.ndarray, reconstruction: np.ndarray) -> float:
    """PSNR in dB between two uint8 arrays of the same shape (``inf`` if identical)."""
    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(reconstruction, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))
