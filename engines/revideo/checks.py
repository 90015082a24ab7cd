"""Validation of a ``revideo`` spec beyond its params model: each area's mask, content image and
trajectory against the input's size and length, and the window against the base model's frame count.

Every edit's resolved params are checked, and a problem is reported at the field it came from
(``params.areas.0.mask.file``, ``edits.1.params.areas.0.trajectory.2``, ...).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engines.common.checks import input_shape, model_config, resolved_params, size_issues, size_multiple
from engines.revideo.editing import drawn_region, grown
from engines.revideo.params import ReVideoParams
from recut.engine import spec_file


def model_facts(spec: Any) -> tuple[int | None, int | None]:
    """``(num_frames, size multiple)`` of the base model when validation can read its configs."""
    unet = model_config(spec, "revideo", "unet")
    frames = (int(unet.get("num_frames", 0)) or None) if unet is not None else None
    return frames, size_multiple(spec, "revideo")


def _mask_file(
    spec: Any, field: str, value: str, t: int | None, h: int | None, w: int | None
) -> tuple[list[tuple[str, str]], np.ndarray | None]:
    p = spec_file(spec.source, value)  # inside the project: recut.spec checks file params before this
    if not p.is_file():
        return [(field, f"{p} not found")], None
    try:
        arr = np.load(p, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        return [(field, f"cannot read {p} as a .npy array: {exc}")], None
    shape = tuple(arr.shape)
    if len(shape) == 2 and None not in (h, w) and shape != (h, w):
        return [(field, f"{p.name} is {list(shape)}, but the frames are {h}x{w} (height x width)")], None
    if len(shape) == 3 and None not in (t, h, w) and shape != (t, h, w):
        return [(field, f"{p.name} is {list(shape)}, but the input is [{t}, {h}, {w}] (frames, height, width)")], None
    if len(shape) not in (2, 3):
        return [(field, f"{p.name} is {list(shape)}; a mask is [H, W] or [T, H, W]")], None
    if not arr.any():
        return [(field, f"{p.name} is empty (no True pixel): the area has no pixel")], None
    return [], arr.astype(bool)


def check_spec(spec: Any) -> list[tuple[str, str]]:
    """``(field.path, message)`` for areas and windows that cannot work on this input and model."""
    from recut import video

    issues: dict[tuple[str, str], None] = {}
    t, h, w = input_shape(spec)
    base_frames, multiple = model_facts(spec)
    issues.update(dict.fromkeys(size_issues(spec, multiple, h, w)))
    objects = len(spec.input.toy.objects) if spec.input.toy is not None else None
    for params, where in resolved_params(spec, ReVideoParams):
        # 1. the window
        win = params["window"]
        size = win["frames"] or base_frames
        if size is not None and win["overlap"] >= size:
            field = where.get("window", "params.window")
            what = "windows of" if win["frames"] else "the base model's"
            issues[(f"{field}.overlap", f"overlap {win['overlap']} is too large for {what} {size} frames")] = None
        # 2. the areas
        base = where.get("areas", "params.areas")
        for i, area in enumerate(params["areas"]):
            at = f"{base}.{i}"
            m = area["mask"]
            region = None
            if m["file"] is not None:
                found, region = _mask_file(spec, f"{at}.mask.file", m["file"], t, h, w)
                issues.update(dict.fromkeys(found))
            if m["truth"] is not None:
                if objects is None:
                    issues[
                        (
                            f"{at}.mask.truth",
                            f"a truth mask needs a toy input (`input.toy`), not `input.{spec.input.kind}`",
                        )
                    ] = None
                elif m["truth"] >= objects:
                    issues[(f"{at}.mask.truth", f"object {m['truth']}: the scene has {objects} object(s)")] = None
            if h is not None and w is not None:
                if m["box"] is not None and (m["box"][2] > w or m["box"][3] > h):
                    issues[(f"{at}.mask.box", f"{m['box']} reaches outside the {w}x{h} frames")] = None
                for j, (x, y) in enumerate(m["polygon"] or []):
                    if not (0 <= x <= w and 0 <= y <= h):
                        issues[(f"{at}.mask.polygon.{j}", f"[{x}, {y}] is outside the {w}x{h} frames")] = None
                drawn = drawn_region(m, h, w)
                if drawn is not None and not drawn.any():
                    issues[(f"{at}.mask", "the area covers no pixel of the frames")] = None
                region = drawn if drawn is not None else region
            if region is not None:
                region = grown(region, int(m["dilate"]))
                uses_frame_0 = area["content"] is not None or area["motion"] == "keep"
                if region.ndim == 3 and uses_frame_0 and not region[0].any():
                    problem = "empty on frame 0, where the area's new content is pasted and its kept tracks start"
                    issues[(f"{at}.mask", problem)] = None
            # 3. the content image
            c = area["content"]
            if c is not None and c["image"] is not None:
                p = spec_file(spec.source, c["image"])
                problem = None
                try:
                    img = video.read_image(p)
                    if h is not None and w is not None and img.shape[:2] != (h, w):
                        problem = f"{p.name} is {img.shape[1]}x{img.shape[0]}, the frames are {w}x{h}"
                except video.MediaError as exc:
                    problem = str(exc)
                if problem:
                    issues[(f"{at}.content.image", problem)] = None
            # 4. the trajectory
            for j, (f, x, y) in enumerate(area["trajectory"] or []):
                field = f"{at}.trajectory.{j}"
                if f < 0 or f != int(f) or (t is not None and f > t - 1):
                    clip = f"the clip's frames 0..{t - 1}" if t is not None else "the clip"
                    issues[(field, f"frame {f} is not one of {clip}")] = None
                elif h is not None and w is not None and not (0 <= x <= w - 1 and 0 <= y <= h - 1):
                    issues[(field, f"[{x}, {y}] is outside the {w}x{h} frame")] = None
                elif region is not None and not _covers(region, int(f), x, y):
                    issues[(field, f"[{x}, {y}] is outside the area's mask: the area must cover the path")] = None
    return list(issues)


def _covers(region: np.ndarray, frame: int, x: float, y: float) -> bool:
    """Whether the area (``[H, W]``, or ``[T, H, W]`` per frame) holds the point on ``frame``."""
    m = region[min(frame, region.shape[0] - 1)] if region.ndim == 3 else region
    return bool(m[min(round(y), m.shape[0] - 1), min(round(x), m.shape[1] - 1)])
