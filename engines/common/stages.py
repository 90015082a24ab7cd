"""Stages every engine shares: preprocess (decode + sample + resize) and evaluate.

Both are pure functions of a :class:`~recut.engine.StageContext`; they need no
model, so workers run them without loading weights.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from engines.common.metrics import METRICS, EvalContext, evaluate_all
from recut import video
from recut.engine import Stage, StageContext
from toyworld import scene as toy
from toyworld.metrics import load_toy_truth

#: Frame rate given to still images and image collections.
IMAGE_FPS = 8.0

PREPROCESS = Stage(
    name="preprocess",
    kind="preprocess",
    version="1",
    reads=("input",),
    description="Decode the input media, sample frames, resize; frames.npy + info.json.",
)

#: Version history: 2 = toy ground-truth metrics, LPIPS, the truth mask covers an object's new place,
#: reads input.frames (which frames of a toy scene the truth describes); 3 = a trajectory error with no
#: frame to measure reads "n/a: ..." (was "skipped: ...").
EVALUATE = Stage(
    name="evaluate",
    kind="evaluate",
    version="3",
    reads=("evaluate", "edit.prompt", "input.frames"),
    after=("preprocess", "sample"),
    options=("runtime.clip", "runtime.mask_file", "runtime.lpips_weights"),
    per_edit=True,
    description="Metrics of the output against the input (and a toy scene's ground truth); metrics.json.",
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
    clip = toy.render(toy.ToyScene.model_validate(inp["toy"]))
    sub = clip.at(toy.frame_index(clip.frames.shape[0], inp["frames"]))
    files = toy.write_clip(sub, ctx.out_dir)
    files["video"].unlink()  # the lossless frames.npy is the input; no mp4 needed here
    fps = clip.scene.fps / inp["frames"]["stride"]
    t, h, w = sub.frames.shape[:3]
    info = {"fps": float(fps), "frames": int(t), "height": int(h), "width": int(w), "source": "toy"}
    info["caption"] = clip.caption
    (ctx.out_dir / "info.json").write_text(json.dumps(info, indent=1))
    return info


def evaluate(ctx: StageContext) -> dict[str, Any]:
    """Steps: 1. load output and input frames; 2. the keep mask; 3. a toy input's ground truth
    (only when a toy metric asks for it); 4. every requested metric; 5. metrics.json."""
    from engines.common.evaluation import keep_mask  # local: evaluation and LPIPS code cost `recut validate` ~4 ms

    # 1. frames
    out = video.load_frames(ctx.inputs["sample"] / "frames.npy")
    ref = video.load_frames(ctx.inputs["preprocess"] / "frames.npy")
    if ref.shape != out.shape:
        ref = video.fit_frames(ref[: out.shape[0]], out.shape[2], out.shape[1], "stretch")
    spec = ctx.values["evaluate"]
    prompt = ctx.values["edit.prompt"]
    frames_sel = ctx.values["input.frames"]
    # 2. the region the edit should leave alone
    keep, source = keep_mask(
        spec["mask"],
        ctx.inputs["sample"],
        ctx.inputs["preprocess"],
        prompt,
        out.shape[:3],
        ctx.values["runtime.mask_file"],
        frames_sel,
    )
    # 3. ground truth
    truth = None
    if any("truth" in METRICS[m].needs for m in spec["metrics"]):
        truth = load_toy_truth(ctx.inputs["preprocess"], frames_sel)
    # 4. metrics
    ectx = EvalContext(
        out,
        ref,
        prompt,
        keep,
        ctx.values["runtime.clip"],
        keep_source=source,
        truth=truth,
        trajectory=spec.get("trajectory"),
        lpips_weights=ctx.values["runtime.lpips_weights"],
    )
    metrics = evaluate_all(spec["metrics"], ectx)
    if keep is not None:
        np.save(ctx.out_dir / "keep_mask.npy", keep)
    (ctx.out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1, sort_keys=True))
    return {"metrics": metrics, "mask_source": source}
