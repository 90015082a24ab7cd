"""Deterministic toy datasets for the model zoo (pure numpy/torch).

Every sample comes from :func:`toyworld.scene.sample_scenes`, so a dataset is fully
determined by its *split*, the scene index range and the keyword arguments:

* ``"train"`` split  -> dataset seed :data:`TRAIN_SEED` (= 1000), scenes ``start .. start+count-1``.
* ``"heldout"`` split -> dataset seed :data:`HELDOUT_SEED` (= 2000).  Scene ``i`` of a split is
  ``sample_scene(np.random.default_rng([seed, i]))``; the two seeds give disjoint, independent
  streams, so nothing measured on ``heldout`` was seen in training.
* ``"train1"`` / ``"heldout1"``: the same seeds offset by 1 (1001 / 2001) for single-object
  streams (``max_objects=1``) so they do not repeat the multi-object scenes.

Main entry points (what the VAE, CLIP and depth trainers use):

``clips(split, count, start=0, **scene_kw) -> list[ToyClip]``
    Rendered clips (``frames`` uint8 ``[T,64,64,3]``, masks, depth, caption ...).
``frame_batch(split, count, start=0, frames_per_scene=1, seed=0, **scene_kw) -> dict``
    Single frames: ``{"frames": float32 [N,3,64,64] in [-1,1], "uint8": [N,64,64,3],
    "captions": list[str], "depth": float32 [N,1,64,64] (0 near .. 1 far),
    "masks": bool [N,K_max,64,64] (visible masks, zero-padded), "scene_index": int [N]}``.
``to_model(uint8) / to_uint8(x)``
    uint8 ``[...,H,W,3]`` <-> float ``[...,3,H,W]`` in [-1,1] (the VAE/UNet range).

CLIP uses its own normalisation (see ``clip.py``: ``CLIP_MEAN``/``CLIP_STD``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from toyworld.scene import ToyClip, render, sample_scenes

TRAIN_SEED = 1000
HELDOUT_SEED = 2000
SIZE = 64

SPLITS = {"train": TRAIN_SEED, "heldout": HELDOUT_SEED, "train1": TRAIN_SEED + 1, "heldout1": HELDOUT_SEED + 1}

__all__ = [
    "HELDOUT_SEED",
    "SIZE",
    "SPLITS",
    "TRAIN_SEED",
    "clips",
    "frame_batch",
    "split_seed",
    "to_model",
    "to_uint8",
]


def split_seed(split: str) -> int:
    """Dataset seed of a split name (``train``, ``heldout``, ``train1``, ``heldout1``)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    return SPLITS[split]


def _scene_kwargs(split: str, kw: dict[str, Any]) -> dict[str, Any]:
    out = {"size": SIZE, **kw}
    if split.endswith("1"):
        out["max_objects"] = 1
    return out


def iter_clips(split: str, count: int, start: int = 0, **scene_kw: Any) -> Iterator[ToyClip]:
    """Render scenes ``start..start+count-1`` of ``split`` one at a time (kwargs go to
    ``sample_scene``: ``frames``, ``max_objects``, ``motions``, ``pan_prob``), for a trainer that
    keeps a few frames of each of many scenes and need not hold all their clips at once."""
    for s in sample_scenes(split_seed(split), count, start, **_scene_kwargs(split, scene_kw)):
        yield render(s)


def clips(split: str, count: int, start: int = 0, **scene_kw: Any) -> list[ToyClip]:
    """:func:`iter_clips` as a list."""
    return list(iter_clips(split, count, start, **scene_kw))


def to_model(uint8: np.ndarray) -> torch.Tensor:
    """uint8 ``[..., H, W, 3]`` -> float32 tensor ``[..., 3, H, W]`` in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(uint8)).float().div(127.5).sub(1.0)
    return x.movedim(-1, -3).contiguous()


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float ``[..., 3, H, W]`` in [-1, 1] -> uint8 ``[..., H, W, 3]`` (rounded, clipped)."""
    y = ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return y.movedim(-3, -1).cpu().numpy()


def _pad_masks(m: np.ndarray, k_max: int = 3) -> np.ndarray:
    out = np.zeros((*m.shape[:-3], k_max, *m.shape[-2:]), dtype=bool)
    out[..., : m.shape[-3], :, :] = m
    return out


def frame_batch(
    split: str,
    count: int,
    start: int = 0,
    frames_per_scene: int = 1,
    seed: int = 0,
    **scene_kw: Any,
) -> dict[str, Any]:
    """``frames_per_scene`` frames (chosen with ``seed``) from each of ``count`` scenes.

    Scenes are rendered with ``frames`` (default 12) frames so camera pans and motion
    positions vary; the returned dict is described in the module docstring.
    """
    rng = np.random.default_rng([seed, split_seed(split), start])
    u8, caps, depth, masks, idx = [], [], [], [], []
    for i, c in enumerate(clips(split, count, start, **scene_kw)):
        t_n = c.frames.shape[0]
        ts = rng.choice(t_n, size=min(frames_per_scene, t_n), replace=False)
        for t in ts:
            u8.append(c.frames[t])
            caps.append(c.caption)
            depth.append(c.depth[t])
            masks.append(_pad_masks(c.masks[t]))
            idx.append(start + i)
    u8a = np.stack(u8)
    return {
        "frames": to_model(u8a),
        "uint8": u8a,
        "captions": caps,
        "depth": torch.from_numpy(np.stack(depth))[:, None],
        "masks": np.stack(masks),
        "scene_index": np.array(idx),
    }
