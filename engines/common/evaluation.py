"""Metrics that need more than two videos: CLIP scores and masked fidelity.

Every function takes an :class:`EvalContext`.  CLIP metrics load the CLIP
model once per process (``load_clip`` is memoised), through
``from_pretrained`` like any other model.

* ``clip_text``: mean cosine between each output frame and the edit prompt.
* ``clip_consistency_consecutive``: mean cosine of consecutive frames
  (the protocol of Tune-A-Video/Video-P2P/Gen-1's "frame consistency").
* ``clip_consistency_all_pairs``: mean cosine over all frame pairs i<j
  (the protocol of Dreamix-style "temporal consistency" tables).
* ``masked_psnr``/``masked_ssim``: fidelity of the region the edit should
  have left alone (``keep`` mask: True = unedited).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np


@dataclass
class EvalContext:
    output: np.ndarray
    reference: np.ndarray | None = None
    prompt: str = ""
    #: True = pixels the edit should have left alone.
    keep: np.ndarray | None = None
    clip_location: str | None = None
    truth: Any = None
    extras: dict[str, Any] = field(default_factory=dict)


@lru_cache(maxsize=2)
def load_clip(location: str) -> tuple[Any, Any]:
    """(CLIPModel, CLIPProcessor) from a folder or a cached hub id, in eval mode."""
    import os

    from transformers import CLIPModel, CLIPProcessor

    kw: dict[str, Any] = {}
    if not os.path.isdir(location):
        kw["local_files_only"] = os.environ.get("RECUT_ALLOW_DOWNLOAD") != "1"
    model = CLIPModel.from_pretrained(location, **kw).eval()
    proc = CLIPProcessor.from_pretrained(location, **kw)
    return model, proc


def _need_clip(ctx: EvalContext) -> tuple[Any, Any]:
    if not ctx.clip_location:
        raise ValueError("CLIP metrics need a CLIP model: set `evaluate.clip` in the spec")
    return load_clip(ctx.clip_location)


def frame_embeddings(ctx: EvalContext) -> np.ndarray:
    """L2-normalised CLIP image embeddings of the output frames, [T, D] (memoised on ctx)."""
    if "frame_emb" not in ctx.extras:
        import torch

        model, proc = _need_clip(ctx)
        with torch.inference_mode():
            inputs = proc(images=list(ctx.output), return_tensors="pt")
            emb = model.get_image_features(pixel_values=inputs["pixel_values"])
            emb = getattr(emb, "pooler_output", emb)
            emb = torch.nn.functional.normalize(emb.float(), dim=-1)
        ctx.extras["frame_emb"] = emb.numpy()
    return ctx.extras["frame_emb"]


def text_embedding(ctx: EvalContext) -> np.ndarray:
    import torch

    model, proc = _need_clip(ctx)
    if not ctx.prompt.strip():
        raise ValueError("clip_text needs the edit's prompt")
    with torch.inference_mode():
        inputs = proc(text=[ctx.prompt], return_tensors="pt", padding=True, truncation=True)
        emb = model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"))
        emb = getattr(emb, "pooler_output", emb)
        emb = torch.nn.functional.normalize(emb.float(), dim=-1)
    return emb.numpy()[0]


def clip_text(ctx: EvalContext) -> float:
    return float((frame_embeddings(ctx) @ text_embedding(ctx)).mean())


def clip_consistency_consecutive(ctx: EvalContext) -> float:
    e = frame_embeddings(ctx)
    if len(e) < 2:
        return 1.0
    return float((e[1:] * e[:-1]).sum(-1).mean())


def clip_consistency_all_pairs(ctx: EvalContext) -> float:
    e = frame_embeddings(ctx)
    if len(e) < 2:
        return 1.0
    sims = e @ e.T
    iu = np.triu_indices(len(e), k=1)
    return float(sims[iu].mean())


def _keep(ctx: EvalContext) -> np.ndarray:
    if ctx.keep is None:
        raise ValueError("masked metrics need a mask: set `evaluate.mask` (truth, engine or a file)")
    return ctx.keep


def masked_psnr(ctx: EvalContext) -> float:
    from engines.common.metrics import psnr

    return psnr(ctx.output, ctx.reference, _keep(ctx))


def masked_ssim(ctx: EvalContext) -> float:
    from engines.common.metrics import ssim

    return ssim(ctx.output, ctx.reference, _keep(ctx))


def _resize_mask(m: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    import cv2

    t, h, w = shape
    if m.ndim == 2:
        m = np.repeat(m[None], t, axis=0)
    if m.shape[0] != t:
        raise ValueError(f"mask has {m.shape[0]} frames, the output has {t}")
    if m.shape[1:] != (h, w):
        m = np.stack([cv2.resize(f.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) for f in m]) > 0
    return m.astype(bool)


def edited_region_from_truth(pre_dir: Any, prompt: str) -> np.ndarray | None:
    """Toy inputs: the silhouettes of the objects the prompt changes ([T,H,W], True = edited).

    The source caption and the prompt are parsed with the toy grammar and
    paired object by object; an object whose colour, shape, size or motion
    differs is edited.  None when the input is not a toy scene or the prompt
    does not parse.
    """
    import json
    from pathlib import Path

    from recut.toy import parse_caption

    d = Path(pre_dir)
    if not (d / "truth.npz").exists():
        return None
    caption = json.loads((d / "scene.json").read_text())["caption"]
    try:
        src, dst = parse_caption(caption), parse_caption(prompt)
    except ValueError:
        return None
    full = np.load(d / "truth.npz")["full_masks"]  # [T, K, H, W]
    edited = np.zeros((full.shape[0], full.shape[2], full.shape[3]), dtype=bool)
    for k, obj in enumerate(src):
        if k >= full.shape[1]:
            break
        if k >= len(dst) or any(obj.get(a) != dst[k].get(a) for a in ("colour", "shape", "size", "motion")):
            edited |= full[:, k]
    return edited


def keep_mask(
    mode: str,
    sample_dir: Any,
    pre_dir: Any,
    prompt: str,
    shape: tuple[int, int, int],
    mask_file: str | None = None,
) -> tuple[np.ndarray | None, str]:
    """The region the edit should leave alone (True = keep), and where it came from."""
    from pathlib import Path

    import cv2

    edited: np.ndarray | None = None
    source = "none"
    engine_mask = Path(sample_dir) / "edit_mask.npy"
    if mode.startswith("file:") and mask_file:
        edited, source = np.load(mask_file).astype(bool), "file"
    if edited is None and mode in ("auto", "engine") and engine_mask.exists():
        edited, source = np.load(engine_mask).astype(bool), "engine"
    if edited is None and mode in ("auto", "truth"):
        edited = edited_region_from_truth(pre_dir, prompt)
        source = "truth" if edited is not None else "none"
    if edited is None:
        if mode in ("engine", "truth"):
            raise ValueError(f"evaluate.mask is {mode!r}, but no {mode} mask is available for this input")
        return None, "none"
    edited = _resize_mask(edited, shape)
    # a small margin: edges of an edited object are not "left alone"
    kernel = np.ones((3, 3), np.uint8)
    edited = np.stack([cv2.dilate(f.astype(np.uint8), kernel) > 0 for f in edited])
    keep = ~edited
    if not keep.any():
        return None, source
    return keep, source
