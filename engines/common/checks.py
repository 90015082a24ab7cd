"""Validation helpers every engine's ``check_spec`` shares: the input's shape as validation can tell it,
each (edit, sweep point)'s resolved params with where each value came from, and media problems."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from pydantic import BaseModel


def input_shape(spec: Any) -> tuple[int | None, int | None, int | None]:
    """``(frames, height, width)`` of the preprocessed input, as far as validation can tell."""
    from recut import video

    inp = spec.input
    fr = inp.frames
    t: int | None = None
    h: int | None = None
    w: int | None = None
    try:
        if inp.toy is not None:
            from toyworld.scene import frame_index  # the toy world's own frame selection

            t, h, w = len(frame_index(inp.toy.frames, fr.model_dump())), inp.toy.height, inp.toy.width
        elif inp.video is not None:
            info = video.probe(inp.video)
            h, w = info.height, info.width
            if fr.fps is None:
                t = fr.count if fr.count is not None else len(range(fr.start, info.frames, fr.stride))
        elif inp.image is not None:
            t, (h, w) = 1, video.read_image(inp.image).shape[:2]
        else:
            t, (h, w) = len(inp.images), video.read_image(inp.images[0]).shape[:2]
    except video.MediaError:
        return None, None, None  # reported by the media checks
    if inp.size is not None:
        h, w = inp.size.height, inp.size.width
    return t, h, w


def resolved_params(spec: Any, model: type[BaseModel]) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """Each (edit, sweep point)'s params, with where each value came from."""
    base = spec.params.model_dump(mode="json")
    out = []
    sweep = [(k.split(".", 1)[1], vals) for k, vals in spec.sweep.items() if k.startswith("params.")]
    combos = list(itertools.product(*[v for _, v in sweep])) if sweep else [()]
    for i, e in enumerate(spec.edits):
        for combo in combos:
            params = {**base, **e.params}
            where = {k: f"params.{k}" for k in base} | {k: f"edits.{i}.params.{k}" for k in e.params}
            for (k, _), v in zip(sweep, combo, strict=True):
                params[k] = v
                where[k] = f"sweep.params.{k}"
            try:
                out.append((model.model_validate(params).model_dump(mode="json"), where))
            except ValueError:
                continue  # the params checks report it
    return out


def media_problem(path: Path) -> str | None:
    """Why ``path`` is neither an image nor a video, or None."""
    from recut import video

    try:
        video.read_image(path)
        return None
    except video.MediaError as exc:
        first = str(exc)
    try:
        video.probe(path)
        return None
    except video.MediaError:
        return first
