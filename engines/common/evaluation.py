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
* ``lpips``: LPIPS distance to the input (engines.common.lpips), only with
  local weights; otherwise skipped with the reason.
* ``toy_*`` (toy inputs only) live in :mod:`toyworld.metrics`: they measure
  against the scene's ground truth with the toy world's judge, never a model.
* :func:`keep_mask`: the region an edit should leave alone, for the masked metrics.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engines.common.lpips import find_weights, lpips_distance
from engines.common.metrics import EvalContext, MetricSkipped, _pair, psnr, ssim
from recut.models import hub_offline
from toyworld.metrics import edited_region_from_truth


@lru_cache(maxsize=2)
def load_clip(location: str) -> tuple[Any, Any]:
    """(CLIPModel, CLIPProcessor) from a folder or a cached hub id, in eval mode."""
    from transformers import CLIPModel, CLIPProcessor  # local: transformers takes seconds to import

    kw: dict[str, Any] = {}
    if not os.path.isdir(location):
        kw["local_files_only"] = os.environ.get("RECUT_ALLOW_DOWNLOAD") != "1"
    with hub_offline():
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
        from engines.common.content import image_embeddings  # local: no torch without CLIP metrics

        model, proc = _need_clip(ctx)
        ctx.extras["frame_emb"] = image_embeddings(model, proc, ctx.output).cpu().numpy()
    return ctx.extras["frame_emb"]


def text_embedding(ctx: EvalContext) -> np.ndarray:
    import torch  # local: the evaluate stage without CLIP metrics needs no torch

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
    if ctx.keep is None and ctx.keep_source != "none":
        raise MetricSkipped(
            f"the {ctx.keep_source} mask of the edited region covers every pixel (with its 3 px margin): "
            "no unedited pixel to compare"
        )
    if ctx.keep is None:
        raise ValueError("masked metrics need a mask: set `evaluate.mask` (truth, engine or a file)")
    return ctx.keep


def masked_psnr(ctx: EvalContext) -> float:

    return psnr(ctx.output, ctx.reference, _keep(ctx))


def masked_ssim(ctx: EvalContext) -> float:

    return ssim(ctx.output, ctx.reference, _keep(ctx))


def _resize_mask(m: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:

    t, h, w = shape
    if m.ndim == 2:
        m = np.repeat(m[None], t, axis=0)
    if m.shape[0] != t:
        raise ValueError(f"mask has {m.shape[0]} frames, the output has {t}")
    if m.shape[1:] != (h, w):
        m = np.stack([cv2.resize(f.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) for f in m]) > 0
    return m.astype(bool)


def lpips(ctx: EvalContext) -> float:
    """Mean LPIPS distance of output and reference frames; skipped without local weights."""

    out, ref = _pair(ctx.output, ctx.reference)
    if ctx.lpips_weights is None:
        _, reason = find_weights()
        raise MetricSkipped(reason or "no LPIPS weights were found when the run was planned")
    return float(lpips_distance(out, ref, ctx.lpips_weights).mean())


def keep_mask(
    mode: str,
    sample_dir: Any,
    pre_dir: Any,
    prompt: str,
    shape: tuple[int, int, int],
    mask_file: str | None = None,
    frames: dict[str, Any] | None = None,
) -> tuple[np.ndarray | None, str]:
    """The region the edit should leave alone (True = keep), and where it came from."""

    edited: np.ndarray | None = None
    source = "none"
    engine_mask = Path(sample_dir) / "edit_mask.npy"
    if mode.startswith("file:") and mask_file:
        edited, source = np.load(mask_file).astype(bool), "file"
    if edited is None and mode in ("auto", "engine") and engine_mask.exists():
        edited, source = np.load(engine_mask).astype(bool), "engine"
    if edited is None and mode in ("auto", "truth"):
        edited = edited_region_from_truth(pre_dir, prompt, frames)
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
