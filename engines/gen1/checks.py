"""Validation of a ``gen1`` spec beyond its params model: the files it names and the mask's size.

Every edit's resolved params (the spec's params, the edit's overrides, each sweep value) are checked,
and a problem is reported at the field it came from: ``params.X``, ``edits.N.params.X`` or
``sweep.params.X``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engines.common.checks import (
    input_shape,
    media_problem,
    model_config,
    resolved_params,
    size_issues,
    size_multiple,
    weight_names,
)
from engines.common.patterns import pattern_matcher
from engines.common.regions import box_region
from engines.gen1.params import Gen1Params
from recut.engine import spec_file

#: The model's optional folders each setting loads (the engine loads them only if present).
NEEDS = {"image": ("content_projection", "clip"), "prior": ("prior", "clip"), "depth": ("depth",)}


def check_spec(spec: Any) -> list[tuple[str, str]]:
    """``(field.path, message)`` for content images and masks that cannot work on this input."""
    from recut import video

    issues: dict[tuple[str, str], None] = {}
    t, h, w = input_shape(spec)
    issues.update(dict.fromkeys(size_issues(spec, size_multiple(spec, "gen1"), h, w)))
    local = model_config(spec, "gen1", "unet") is not None  # the components can be looked at here
    for params, where in resolved_params(spec, Gen1Params):
        # 0. the optional components this edit's settings load
        for key, value, parts in (
            ("content", params["content"], NEEDS.get(params["content"], ())),
            ("structure", params["structure"], NEEDS.get(params["structure"], ())),
        ):
            missing = [c for c in parts if local and model_config(spec, "gen1", c) is None]
            if missing:
                field = where.get(key, f"params.{key}")
                issues[(field, f"{key} {value!r} needs the model's {' and '.join(missing)}, which it lacks")] = None
        # 1. the content image
        if params["content_image"]:
            field = where.get("content_image", "params.content_image")
            try:  # the project-root rule for file params is recut.spec's, checked before this
                video.read_image(spec_file(spec.source, params["content_image"]))
            except video.MediaError as exc:
                issues[(field, str(exc))] = None
        # 2. customization data
        cz = params.get("customize")
        if cz:
            field = where.get("customize", "params.customize")
            for key in ("images", "regularization"):
                for j, value in enumerate(cz[key]):
                    p = spec_file(spec.source, value)
                    problem = media_problem(p)
                    if problem:
                        issues[(f"{field}.{key}.{j}", problem)] = None
            names = weight_names(spec, "gen1", "unet")
            for j, pattern in enumerate(cz["trainable"]):
                if names is not None and not any(map(pattern_matcher(pattern), names)):
                    issues[(f"{field}.trainable.{j}", f"{pattern!r} matches no parameter of the model's UNet")] = None
        # 3. the mask
        m = params["mask"]
        if m is None:
            if spec.evaluation.mask == "engine":
                no_mask = "is 'engine', but an edit has no `params.mask`, so gen1 writes no edit mask"
                issues[("evaluate.mask", no_mask)] = None
            continue
        field = where.get("mask", "params.mask")
        if m["truth"] and spec.input.toy is None:
            issues[
                (f"{field}.truth", f"a truth mask needs a toy input (`input.toy`), not `input.{spec.input.kind}`")
            ] = None
        for j, (x0, y0, x1, y1) in enumerate(m["boxes"] or []):
            if w is not None and h is not None and (x1 > w or y1 > h):
                issues[(f"{field}.boxes.{j}", f"[{x0}, {y0}, {x1}, {y1}] reaches outside the {w}x{h} frames")] = None
            elif w is not None and h is not None and not box_region((x0, y0, x1, y1), h, w).any():
                issues[(f"{field}.boxes.{j}", f"[{x0}, {y0}, {x1}, {y1}] covers no pixel of the frames")] = None
        if m["file"]:
            p = spec_file(spec.source, m["file"])
            try:
                arr = np.load(p, allow_pickle=False)
            except (OSError, ValueError, EOFError) as exc:
                issues[(f"{field}.file", f"cannot read {p} as a .npy array: {exc}")] = None
                continue
            shape = tuple(arr.shape)
            want3 = (t, h, w)
            if len(shape) == 2 and (h, w) != (None, None) and shape != (h, w):
                issues[(f"{field}.file", f"{p.name} is {list(shape)}, but the frames are {h}x{w} (height x width)")] = (
                    None
                )
            elif len(shape) == 3 and None not in want3 and shape != want3:
                issues[
                    (
                        f"{field}.file",
                        f"{p.name} is {list(shape)}, but the input is [{t}, {h}, {w}] (frames, height, width)",
                    )
                ] = None
            elif len(shape) not in (2, 3):
                issues[(f"{field}.file", f"{p.name} is {list(shape)}; a mask is [T, H, W] or [H, W]")] = None
            elif not arr.any():
                issues[(f"{field}.file", f"{p.name} is empty (no True pixel): there is nothing to mask")] = None
    return list(issues)
