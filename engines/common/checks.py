"""Validation helpers every engine's ``check_spec`` shares: the input's shape as validation can tell it,
each (edit, sweep point)'s resolved params with where each value came from, and media problems."""

from __future__ import annotations

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
            t = fr.count if fr.count is not None else video.frames_selected(info, fr.start, fr.stride, fr.fps)
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
    return [(params, where) for _, params, where in edit_params(spec, model)]


def edit_params(spec: Any, model: type[BaseModel]) -> list[tuple[int, dict[str, Any], dict[str, str]]]:
    """Each (edit, sweep point)'s params as ``(edit index, params, where each value came from)``."""
    from recut.sweep import edit_params_at, sweep_points

    base = spec.params.model_dump(mode="json")
    out = []
    for i, e in enumerate(spec.edits):
        for point in sweep_points(spec):
            params = edit_params_at(spec, i, point)
            where = {k: f"params.{k}" for k in base} | {k: f"edits.{i}.params.{k}" for k in e.params}
            for key in point:
                if key.startswith("params."):
                    top = key.split(".")[1]
                    where[top] = f"sweep.params.{top}"
            try:
                out.append((i, model.model_validate(params).model_dump(mode="json"), where))
            except ValueError:
                continue  # recut.spec's checks report it (each edit at each sweep point is validated there)
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


def model_location(spec: Any, role: str) -> str | None:
    """Where validation can look at the spec's model for ``role`` without building or downloading it:
    a local folder, a profile-built-on-use's config folder, or a hub id; None when the model does not
    resolve or has no such role."""
    try:
        model = spec.model.resolve()
    except Exception:  # noqa: BLE001 - an unavailable model is reported by the model checks
        return None
    loc = model.components.get(role)
    if loc is None or model.build is None:
        return loc
    configs, cache = model.build
    try:
        return str(Path(configs) / Path(loc).relative_to(cache))
    except ValueError:
        return None


def model_config(spec: Any, role: str, component: str, name: str = "config.json") -> dict[str, Any] | None:
    """The ``config.json`` (or ``name``) of ``component`` (``unet``, ``vae``, ...) of the spec's model for ``role``,
    when validation can read it here (:func:`model_location`); None when it cannot tell (a hub id, a
    missing file)."""
    import json

    loc = model_location(spec, role)
    if loc is None:
        return None
    try:
        return dict(json.loads((Path(loc) / component / name).read_text()))
    except (OSError, ValueError):
        return None


def weight_names(spec: Any, role: str, component: str) -> list[str] | None:
    """The parameter names in the safetensors files of ``component`` of the spec's model for ``role``
    (read from the files' headers, no weights loaded); None when validation cannot see the weights here
    (a hub id, a profile built on use, no safetensors file)."""
    from safetensors import safe_open

    loc = model_location(spec, role)
    files = sorted((Path(loc) / component).glob("*.safetensors")) if loc is not None else []
    if not files:
        return None
    names: list[str] = []
    for f in files:
        try:
            with safe_open(str(f), framework="np") as fh:
                names += list(fh.keys())
        except (OSError, ValueError):
            return None
    return names


def size_multiple(spec: Any, role: str) -> int | None:
    """What frame sizes must be a multiple of for the spec's model ``role``: the VAE's factor times the
    UNet's downsamplings (None when validation cannot read the configs)."""
    unet, vae = model_config(spec, role, "unet"), model_config(spec, role, "vae")
    if unet is None or vae is None:
        return None
    return int(2 ** (len(vae["block_out_channels"]) - 1) * 2 ** (len(unet["block_out_channels"]) - 1))


def size_issues(spec: Any, multiple: int | None, h: int | None, w: int | None) -> list[tuple[str, str]]:
    """The frame size refused, at ``input.size`` (or the input), when it is not a multiple of ``multiple``."""
    if not multiple or h is None or w is None or not (h % multiple or w % multiple):
        return []
    where = "input.size" if spec.input.size is not None else f"input.{spec.input.kind}"
    return [(where, f"frames of {w}x{h} are not multiples of {multiple} (this model's VAE and UNet); set input.size")]
