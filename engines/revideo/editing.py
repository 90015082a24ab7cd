"""ReVideo's edit inputs as pure functions: area masks, the edited first frame, the areas' tracks and
motion maps, the sliding windows, and the seam figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engines.common.regions import box_region
from engines.common.tracks import Tracks, drawn_path, motion_maps, sample_tracks


def drawn_region(mask: dict[str, Any], h: int, w: int) -> np.ndarray | None:
    """``[H, W]`` bool of a ``polygon`` or ``box`` mask (None for the other kinds)."""
    if mask.get("polygon") is not None:
        img = np.zeros((h, w), np.uint8)
        cv2.fillPoly(img, [np.rint(np.asarray(mask["polygon"], np.float64)).astype(np.int32)], 1)
        return img.astype(bool)
    if mask.get("box") is not None:
        return box_region(mask["box"], h, w)
    return None


def grown(region: np.ndarray, d: int) -> np.ndarray:
    """``region`` (``[H, W]`` or ``[T, H, W]`` bool) dilated by ``d`` pixels (an ellipse)."""
    if not d:
        return region
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * d + 1, 2 * d + 1))
    flat = region.reshape(-1, *region.shape[-2:])
    return np.stack([cv2.dilate(m.astype(np.uint8), kernel).astype(bool) for m in flat]).reshape(region.shape)


def area_mask(mask: dict[str, Any], file: str | None, pre_dir: Path, shape: tuple[int, int, int]) -> np.ndarray:
    """``[T, H, W]`` bool, True inside the area: a .npy, a polygon, a box or a toy object's trail,
    grown by ``dilate`` pixels."""
    t, h, w = shape
    if mask.get("file") is not None:
        if file is None:
            raise ValueError("mask.file: the planner gave no path for the mask file")
        region = np.load(file, allow_pickle=False).astype(bool)
        if region.ndim == 2:
            region = np.repeat(region[None], t, axis=0)
    elif (drawn := drawn_region(mask, h, w)) is not None:
        region = np.repeat(drawn[None], t, axis=0)
    else:
        from toyworld import scene as toy  # a toy input's ground truth: where its object goes

        truth = toy.load_truth(pre_dir)
        k = int(mask["truth"])
        if k >= truth.full_masks.shape[1]:
            raise ValueError(f"mask.truth: the scene has {truth.full_masks.shape[1]} object(s), not object {k}")
        region = np.repeat(truth.full_masks[:, k].any(0)[None], t, axis=0)
    if region.shape != (t, h, w):
        raise ValueError(f"mask: the mask is {list(region.shape)}, the frames are [{t}, {h}, {w}]")
    return grown(region, int(mask.get("dilate") or 0))


def first_frame(frame0: np.ndarray, masks: np.ndarray, contents: list[np.ndarray | None]) -> np.ndarray:
    """Frame 0 with each area's new content pasted inside the area (its mask on frame 0)."""
    out = frame0.copy()
    for i, (m, content) in enumerate(zip(masks, contents, strict=True)):
        if content is not None:
            if not m[0].any():
                raise ValueError(f"areas.{i}.mask: empty on frame 0, so the area's new content has nowhere to go")
            out[m[0]] = content[m[0]]
    return out


def area_tracks(
    area: dict[str, Any], mask: np.ndarray, grid: Tracks, rng: np.random.Generator, max_tracks: int
) -> Tracks | None:
    """The tracks that drive an area: the input's own (``keep``: tracks starting inside the area, drawn
    as the paper samples them), the drawn trajectory, or none."""
    frames = mask.shape[0]
    if area["motion"] == "trajectory":
        return drawn_path(area["trajectory"], frames)
    if area["motion"] == "keep":
        start = np.rint(grid.points[:, 0]).astype(int)
        h, w = mask.shape[1:]
        ok = (start[:, 0] >= 0) & (start[:, 0] < w) & (start[:, 1] >= 0) & (start[:, 1] < h)
        inside = np.zeros(len(grid), bool)
        inside[ok] = mask[0][start[ok, 1], start[ok, 0]]
        return sample_tracks(grid.subset(np.flatnonzero(inside)), rng, stride=1, max_tracks=max_tracks)
    return None


def condition_maps(tracks: list[Tracks | None], shape: tuple[int, int, int], sigma: float) -> np.ndarray:
    """``[T, 2, H, W]``: every area's trajectory maps, summed."""
    t, h, w = shape
    out = np.zeros((t, 2, h, w), np.float32)
    for tr in tracks:
        if tr is not None and len(tr):
            out += motion_maps(tr, h, w, sigma)
    return out


def windows(total: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` covering ``total`` frames with windows of ``size`` frames, each sharing
    ``overlap`` frames with the previous one (the last may be shorter, but has at least ``overlap`` + 1)."""
    if size < 2 or not 1 <= overlap < size:
        raise ValueError(f"window: need 2 <= frames and 1 <= overlap < frames; got frames {size}, overlap {overlap}")
    if total <= size:
        return [(0, total)]
    out = [(0, size)]
    while out[-1][1] < total:
        start = out[-1][1] - overlap
        out.append((start, min(start + size, total)))
    return out


def seam_figures(frames: np.ndarray, spans: list[tuple[int, int]], overlap: int) -> dict[str, float]:
    """The jump at window borders: the mean absolute frame difference across each border (the last
    frame kept from a window -> the first new frame of the next) over the mean difference elsewhere."""
    if len(spans) < 2:
        return {}
    x = frames.astype(np.float32)
    diff = np.abs(x[1:] - x[:-1]).mean(axis=(1, 2, 3))  # diff[i] is frame i -> i + 1
    seams = np.array([start + overlap - 1 for start, _ in spans[1:]])
    inner = np.setdiff1d(np.arange(len(diff)), seams)
    seam, rest = float(diff[seams].mean()), float(diff[inner].mean()) if inner.size else float("nan")
    return {"seam_diff": round(seam, 3), "inner_diff": round(rest, 3), "seam_ratio": round(seam / max(rest, 1e-6), 3)}
