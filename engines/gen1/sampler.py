"""Gen-1 sampling: structure-conditioned DDIM from noise, with content and temporal guidance and masks.

The UNet is a video UNet (``UNet3DConditionModel``) whose ``conv_in`` takes, besides the noisy latents
``z_t`` (C channels), the VAE latent of the structure map at level ``t_s`` and 4 channels of the t_s
embedding (:mod:`engines.common.structure`). Content enters through cross-attention: text hidden
states, or a CLIP image embedding through a :class:`ContentProjection` (from an image, or from the
text through an :class:`EmbeddingPrior`).

Steps of :func:`sample`: 1. the structure channels at t_s; 2. the DDIM schedule and the start noise;
3. each step: the guided prediction (:func:`engines.common.guidance.content_temporal_eps`), the DDIM
update, and, with a mask, the kept region replaced by the source latents noised to the next timestep.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from engines.common import sampling
from engines.common.guidance import content_temporal_eps
from engines.common.structure import structure_channels, structure_level


@dataclass
class Gen1Components:
    """Everything a Gen-1 sample needs; ``projection``/``prior``/``clip`` only for image content."""

    base: sampling.Components
    projection: Any = None
    prior: Any = None
    clip: Any = None
    clip_processor: Any = None

    @property
    def latent_channels(self) -> int:
        return int(self.base.vae.config.latent_channels)


def encode_fn(c: sampling.Components) -> Callable[[torch.Tensor], torch.Tensor]:
    """Images ``[N, 3, H, W]`` in [-1, 1] -> scaled VAE latents (posterior mean)."""

    def run(x: torch.Tensor) -> torch.Tensor:
        return c.vae.encode(x.to(c.dtype)).latent_dist.mode() * c.vae.config.scaling_factor

    return run


def structure_input(c: sampling.Components, maps: np.ndarray, t_s: int) -> torch.Tensor:
    """``[1, C_lat + 4, T, h, w]``: the structure latents of ``maps`` ``[T, H, W]`` at level ``t_s``."""
    level = torch.from_numpy(structure_level(maps, t_s))[None]
    with torch.no_grad():
        return structure_channels(encode_fn(c), level, t_s)


def image_context(g: Gen1Components, embedding: torch.Tensor) -> torch.Tensor:
    """Cross-attention context ``[1, tokens, D]`` of a unit CLIP image embedding ``[1, E]``."""
    if g.projection is None:
        raise ValueError("this model has no content projection: it takes text content only")
    dtype = next(g.projection.parameters()).dtype  # the projection keeps its own dtype (float32 as saved)
    with torch.no_grad():
        return g.projection(embedding.to(dtype)).to(g.base.dtype)


def prior_embedding(g: Gen1Components, prompt: str) -> torch.Tensor:
    """The CLIP image embedding the prior predicts for ``prompt``, ``[1, E]``."""
    from engines.common.content import text_embeddings

    if g.prior is None or g.clip is None:
        raise ValueError("this model has no prior: content.source 'prior' needs one")
    with torch.no_grad():
        emb = text_embeddings(g.clip, g.clip_processor, [prompt])  # float32
        return g.prior(emb.to(next(g.prior.parameters()).dtype))


def unet_fn(unet: Any, structure: torch.Tensor) -> Callable[[torch.Tensor, Any, torch.Tensor], torch.Tensor]:
    """The UNet on ``[z_t, structure]`` (the structure repeated over the batch)."""

    def run(latents: torch.Tensor, t: Any, context: torch.Tensor) -> torch.Tensor:
        s = structure.expand(latents.shape[0], -1, -1, -1, -1)
        return unet(torch.cat([latents, s.to(latents.dtype)], dim=1), t, encoder_hidden_states=context).sample

    return run


def sample(
    g: Gen1Components,
    maps: np.ndarray,
    cond: torch.Tensor,
    uncond: torch.Tensor,
    settings: SampleSettings,
    keep: np.ndarray | None = None,
    source: np.ndarray | None = None,
    progress: Callable[[int, int], None] | None = None,
    paste_back: bool = True,
) -> np.ndarray:
    """A clip ``uint8 [T, H, W, 3]`` with the structure of ``maps`` ``[T, H, W]`` and content ``cond``.

    ``keep`` ``[T, H, W]`` bool (True = keep the source there) with ``source`` ``uint8 [T, H, W, 3]``:
    masked editing; the kept region is the source's latents noised to each step's level, and with
    ``paste_back`` the source's pixels after decoding.
    """
    c = g.base
    s = settings
    t_frames, h, w = maps.shape
    # 1. structure
    structure = structure_input(c, maps, s.structure_level)
    # 2. schedule and start
    sched, timesteps = sampling.schedule(c.scheduler_config, s.steps, 1.0)
    gen = torch.Generator().manual_seed(int(s.seed))
    shape = (1, g.latent_channels, t_frames, h // c.vae_scale, w // c.vae_scale)
    latents = torch.randn(shape, generator=gen).to(c.dtype) * sched.init_noise_sigma
    keep_lat, src_lat = None, None
    if keep is not None:
        if source is None:
            raise ValueError("a keep mask needs the source frames")
        src_lat = sampling.encode(c, source, batch=16).permute(1, 0, 2, 3)[None]  # [1, C, T, h, w]
        k = torch.from_numpy(keep.astype(np.float32))[:, None]  # [T, 1, H, W]
        k = torch.nn.functional.interpolate(k, size=shape[-2:], mode="area")
        keep_lat = (k > 0.5).float().permute(1, 0, 2, 3)[None].to(c.dtype)  # [1, 1, T, h, w]
    cond, uncond = cond.to(c.dtype), uncond.to(c.dtype)
    fn = unet_fn(c.unet, structure)
    # 3. the steps
    n = len(timesteps)
    with torch.no_grad():
        for i, t in enumerate(timesteps):
            eps = content_temporal_eps(c.unet, fn, latents, t, cond, uncond, s.content_guidance, s.temporal_guidance)
            latents = sched.step(eps, t, latents, eta=s.eta, generator=gen).prev_sample
            if keep_lat is not None and src_lat is not None:
                nxt = timesteps[i + 1] if i + 1 < n else None
                known = src_lat if nxt is None else sched.add_noise(src_lat, torch.randn(shape, generator=gen), nxt)
                latents = keep_lat * known.to(latents.dtype) + (1 - keep_lat) * latents
            if progress is not None:
                progress(i + 1, n)
        frames = sampling.decode(c, latents[0].permute(1, 0, 2, 3), batch=16)
    if keep is not None and source is not None and paste_back:
        frames = np.where(keep[..., None], source, frames)
    return frames


@dataclass(frozen=True)
class SampleSettings:
    structure_level: int = 0
    steps: int = 25
    content_guidance: float = 5.0
    temporal_guidance: float = 1.0
    eta: float = 0.0
    seed: int = 0
