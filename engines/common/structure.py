"""Structure conditioning (Gen-1, Esser et al. 2023): a structure map per frame, its level t_s, and the
widened UNet input that carries both.

A *structure representation* turns frames into one float map per frame (:class:`Structure`); the
``depth`` one runs a ``DPTForDepthEstimation`` model, ``edges`` needs no weights. The structure level
``t_s`` (0..T_s) is applied at sampling time, not at extraction, so one extraction serves every level:
:func:`structure_level` blurs and downsamples the map ``t_s`` times, then resamples it to the frame
size. :func:`structure_channels` encodes that image with the VAE and appends a sinusoidal embedding
of ``t_s`` (4 constant channels), and :func:`widen_conv_in` gives a trained UNet the room for those
channels with zero weights, so the widened model starts exactly as the original one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

#: The paper's number of structure levels above 0.
T_S_MAX = 7
#: Channels of the t_s embedding appended to the structure latent.
TS_CHANNELS = 4


@dataclass(frozen=True)
class Structure:
    """A structure representation: ``extract(frames uint8 [T,H,W,3]) -> float32 [T,H,W]`` in [0, 1]."""

    name: str
    description: str
    needs_model: bool
    extract: Callable[..., np.ndarray]


def normalise(maps: np.ndarray) -> np.ndarray:
    """Min-max over the whole clip (one scale for every frame, so depth changes over time survive)."""
    maps = np.asarray(maps, dtype=np.float32)
    lo, hi = float(maps.min()), float(maps.max())
    if hi - lo < 1e-6:
        return np.zeros_like(maps)
    return (maps - lo) / (hi - lo)


def depth_maps(frames: np.ndarray, model: Any, processor: Any, batch: int = 16) -> np.ndarray:
    """Per-frame depth of ``frames`` with a DPT model, resized to the frames, normalised over the clip."""
    import torch

    h, w = frames.shape[1:3]
    out = []
    with torch.inference_mode():
        for i in range(0, len(frames), batch):
            pv = processor(images=list(frames[i : i + batch]), return_tensors="pt")["pixel_values"]
            pv = pv.to(next(model.parameters()).device, next(model.parameters()).dtype)
            d = model(pixel_values=pv).predicted_depth.float()
            d = torch.nn.functional.interpolate(d[:, None], size=(h, w), mode="bicubic", align_corners=False)[:, 0]
            out.append(d.cpu().numpy())
    return normalise(np.concatenate(out))


def edge_maps(frames: np.ndarray) -> np.ndarray:
    """Canny edges of each frame (thresholds from the frame's median), as a float map in [0, 1]."""
    out = []
    for f in frames:
        g = cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)
        m = float(np.median(g))
        out.append(cv2.Canny(g, int(max(0, 0.66 * m)), int(min(255, 1.33 * m + 1))).astype(np.float32) / 255.0)
    return np.stack(out)


STRUCTURES: dict[str, Structure] = {
    "depth": Structure(
        "depth", "Monocular depth per frame (DPTForDepthEstimation; MiDaS on a GPU box).", True, depth_maps
    ),
    "edges": Structure("edges", "Canny edges per frame; no weights.", False, lambda frames, *_: edge_maps(frames)),
}


def structure_level(maps: np.ndarray, t_s: int) -> np.ndarray:
    """``t_s`` rounds of (Gaussian blur, 2x downsample), then back to the maps' size (bilinear)."""
    if not 0 <= int(t_s) <= T_S_MAX:
        raise ValueError(f"structure level t_s must be in 0..{T_S_MAX}, got {t_s!r}")
    h, w = maps.shape[1:3]
    out = []
    for m in np.asarray(maps, dtype=np.float32):
        x = m
        for _ in range(int(t_s)):
            x = cv2.GaussianBlur(x, (5, 5), 1.0, borderType=cv2.BORDER_REFLECT)
            x = cv2.resize(x, (max(1, x.shape[1] // 2), max(1, x.shape[0] // 2)), interpolation=cv2.INTER_AREA)
        out.append(cv2.resize(x, (w, h), interpolation=cv2.INTER_LINEAR) if x.shape != (h, w) else x)
    return np.stack(out)


def ts_embedding(t_s: Any, channels: int = TS_CHANNELS) -> Any:
    """Sinusoidal embedding of the structure level(s) ``t_s`` (scalar or [B]) -> ``[B, channels]``."""
    import torch

    t = torch.as_tensor(t_s, dtype=torch.float32).reshape(-1)
    half = channels // 2
    freqs = torch.exp(-math.log(10.0) * torch.arange(half, dtype=torch.float32) / max(1, half))
    ang = t[:, None] * freqs[None] * (math.pi / T_S_MAX)
    return torch.cat([torch.sin(ang), torch.cos(ang)], dim=1)


def structure_channels(encode: Callable[[Any], Any], level_maps: Any, t_s: Any) -> Any:
    """Structure latents with the t_s embedding: ``[B, C_lat + 4, T, h, w]``.

    ``level_maps``: float ``[B, T, H, W]`` in [0, 1] (after :func:`structure_level`); ``encode`` maps
    images ``[N, 3, H, W]`` in [-1, 1] to scaled latents ``[N, C, h, w]`` (the VAE). ``t_s``: one
    level for the batch or one per clip.
    """
    import torch

    b, t, h, w = level_maps.shape
    img = (level_maps.reshape(b * t, 1, h, w) * 2.0 - 1.0).expand(-1, 3, -1, -1)
    lat = encode(img)
    lat = lat.reshape(b, t, *lat.shape[1:]).permute(0, 2, 1, 3, 4)  # [B, C, T, h, w]
    emb = ts_embedding(t_s).to(lat.device, lat.dtype)
    if emb.shape[0] == 1 and b > 1:
        emb = emb.expand(b, -1)
    emb = emb[:, :, None, None, None].expand(-1, -1, *lat.shape[2:])
    return torch.cat([lat, emb], dim=1)


def widen_conv_in(unet: Any, extra: int) -> Any:
    """Give ``unet.conv_in`` ``extra`` more input channels with zero weights (in place; returns the UNet).

    With the new channels at zero the widened UNet computes exactly what it did, whatever those
    channels hold; training then learns to use them (as inpainting and depth-to-image models are made).
    """
    import torch

    old = unet.conv_in
    new = torch.nn.Conv2d(
        old.in_channels + extra, old.out_channels, old.kernel_size, old.stride, old.padding, bias=old.bias is not None
    ).to(old.weight.device, old.weight.dtype)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, : old.in_channels] = old.weight
        if old.bias is not None:
            new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=old.in_channels + extra)
    return unet
