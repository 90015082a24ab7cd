"""Stages every engine shares: preprocess (decode + sample + resize) and evaluate.

Both are pure functions of a :class:`~recut.engine.StageContext`; they need no
model, so workers run them without loading weights.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from recut import video
from recut.engine import Stage, StageContext

#: Frame rate given to still images and image collections.
IMAGE_FPS = 8.0

PREPROCESS = Stage(
    name="preprocess",
    kind="preprocess",
    version="1",
    reads=("input",),
    description="Decode the input media, sample frames, resize; frames.npy + info.json.",
)

EVALUATE = Stage(
    name="evaluate",
    kind="evaluate",
    version="1",
    reads=("evaluate", "edit.prompt"),
    after=("preprocess", "sample"),
    options=("runtime.clip", "runtime.mask_file"),
    per_edit=True,
    description="Metrics of the output against the input; metrics.json.",
)


def preprocess(ctx: StageContext) -> dict[str, Any]:
    inp = ctx.values["input"]
    paths = ctx.values["_media"]
    fr = inp["frames"]
    if inp["kind"] == "toy":
        return _preprocess_toy(ctx, inp)
    if inp["kind"] == "video":
        frames, fps = video.read_video(
            paths[0], start=fr["start"], count=fr["count"], stride=fr["stride"], fps=fr["fps"]
        )
    elif inp["kind"] == "image":
        frames, fps = video.read_image(paths[0])[None], IMAGE_FPS
    else:
        frames, fps = video.read_images(paths), IMAGE_FPS
    size = inp.get("size")
    if size:
        frames = video.fit_frames(frames, size["width"], size["height"], size["mode"])
    video.save_frames(ctx.out_dir / "frames.npy", frames)
    t, h, w = frames.shape[:3]
    info = {"fps": float(fps), "frames": int(t), "height": int(h), "width": int(w), "source": inp["kind"]}
    (ctx.out_dir / "info.json").write_text(json.dumps(info, indent=1))
    return info


def _preprocess_toy(ctx: StageContext, inp: dict[str, Any]) -> dict[str, Any]:
    """Render the scene; keep its ground truth beside the frames (truth.npz, scene.json)."""
    from recut import toy

    clip = toy.render(toy.ToyScene.model_validate(inp["toy"]))
    fr = inp["frames"]
    stop = None if fr["count"] is None else fr["start"] + fr["count"] * fr["stride"]
    idx = np.arange(clip.frames.shape[0])[fr["start"] : stop : fr["stride"]]
    sub = toy.ToyClip(
        frames=clip.frames[idx],
        masks=clip.masks[idx],
        full_masks=clip.full_masks[idx],
        depth=clip.depth[idx],
        tracks=clip.tracks[:, idx],
        visible=clip.visible[:, idx],
        caption=clip.caption,
        object_captions=clip.object_captions,
        scene=clip.scene,
    )
    files = toy.write_clip(sub, ctx.out_dir)
    files["video"].unlink()  # the lossless frames.npy is the input; no mp4 needed here
    fps = clip.scene.fps / fr["stride"]
    t, h, w = sub.frames.shape[:3]
    info = {"fps": float(fps), "frames": int(t), "height": int(h), "width": int(w), "source": "toy"}
    info["caption"] = clip.caption
    (ctx.out_dir / "info.json").write_text(json.dumps(info, indent=1))
    return info


def evaluate(ctx: StageContext) -> dict[str, Any]:
    from engines.common.evaluation import EvalContext, keep_mask
    from engines.common.metrics import evaluate_all

    out = video.load_frames(ctx.inputs["sample"] / "frames.npy")
    ref = video.load_frames(ctx.inputs["preprocess"] / "frames.npy")
    if ref.shape != out.shape:
        ref = video.fit_frames(ref[: out.shape[0]], out.shape[2], out.shape[1], "stretch")
    spec = ctx.values["evaluate"]
    prompt = ctx.values.get("edit.prompt", "")
    keep, source = keep_mask(
        spec["mask"],
        ctx.inputs["sample"],
        ctx.inputs["preprocess"],
        prompt,
        out.shape[:3],
        ctx.values.get("runtime.mask_file"),
    )
    ectx = EvalContext(out, ref, prompt, keep, ctx.values.get("runtime.clip"))
    metrics = evaluate_all(spec["metrics"], ectx)
    if keep is not None:
        np.save(ctx.out_dir / "keep_mask.npy", keep)
    (ctx.out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1, sort_keys=True))
    return {"metrics": metrics, "mask_source": source}
