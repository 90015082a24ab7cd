"""Image-to-video sampling with an SVD-class model (Stable Video Diffusion, Blattmann et al. 2023).

The model: a ``UNetSpatioTemporalConditionModel`` on ``[z_t, first-frame latent]`` (channels
concatenated, the latent repeated over the frames), cross-attending to the CLIP image embedding of the
first frame, with added time ids ``(fps - 1, motion bucket, noise augmentation)``; EDM
preconditioning through ``EulerDiscreteScheduler`` (``scale_model_input`` / ``step``); guidance that
grows linearly over the frames from ``min_guidance`` to ``max_guidance``, the unconditional branch
having zero image embedding and zero first-frame latent. :func:`sample` is diffusers'
``StableVideoDiffusionPipeline`` as plain steps (``tests/test_svd.py`` checks they agree), with one
addition: ``unet_fn`` replaces the UNet call, which is where a control module adds its residuals.

Steps of :func:`sample`: 1. the first frame's CLIP embedding; 2. its noise-augmented VAE latent;
3. the added time ids; 4. the schedule and the start noise; 5. the guided Euler steps; 6. decode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from diffusers import EulerDiscreteScheduler
from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import _resize_with_antialiasing

#: ``unet_fn(latent_model_input [B, T, 2C, h, w], t, image_embeddings [B, 1, D], added_time_ids [B, 3])``.
UNetFn = Callable[[torch.Tensor, Any, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class SVDComponents:
    unet: Any
    vae: Any  # AutoencoderKLTemporalDecoder
    image_encoder: Any  # CLIPVisionModelWithProjection
    feature_extractor: Any  # CLIPImageProcessor
    scheduler_config: Any
    dtype: Any = torch.float32

    @property
    def vae_scale(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)


@dataclass(frozen=True)
class I2VSettings:
    frames: int = 14
    steps: int = 25
    fps: int = 7
    motion_bucket_id: int = 127
    noise_aug_strength: float = 0.02
    min_guidance: float = 1.0
    max_guidance: float = 3.0
    seed: int = 0
    decode_chunk: int = 8


def to_pixels(image: np.ndarray) -> torch.Tensor:
    """uint8 ``[H, W, 3]`` -> float ``[1, 3, H, W]`` in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0 * 2.0 - 1.0


@torch.no_grad()
def image_embedding(c: SVDComponents, image: np.ndarray) -> torch.Tensor:
    """The CLIP image embedding ``[1, 1, D]`` of a uint8 frame, preprocessed as SVD was trained."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0
    x = (_resize_with_antialiasing(x * 2.0 - 1.0, (224, 224)) + 1.0) / 2.0
    pv = c.feature_extractor(
        images=x, do_normalize=True, do_center_crop=False, do_resize=False, do_rescale=False, return_tensors="pt"
    ).pixel_values
    return c.image_encoder(pv.to(c.dtype)).image_embeds.unsqueeze(1)


def default_unet_fn(c: SVDComponents) -> UNetFn:
    def run(x: torch.Tensor, t: Any, emb: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return c.unet(x, t, encoder_hidden_states=emb, added_time_ids=ids, return_dict=False)[0]

    return run


@torch.no_grad()
def sample(
    c: SVDComponents,
    first_frame: np.ndarray,
    s: I2VSettings,
    unet_fn: UNetFn | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Latents ``[1, T, C, h, w]`` of a clip that starts from ``first_frame`` (uint8 ``[H, W, 3]``)."""
    h, w = first_frame.shape[:2]
    guided = s.max_guidance > 1.0
    gen = torch.Generator().manual_seed(int(s.seed))
    fn = unet_fn or default_unet_fn(c)
    # 1. the image embedding (zeros for the unconditional branch)
    emb = image_embedding(c, first_frame)
    # 2. the noise-augmented first-frame latent, repeated over the frames
    image = to_pixels(first_frame)
    image = image + s.noise_aug_strength * torch.randn(image.shape, generator=gen)
    lat0 = c.vae.encode(image.to(c.dtype)).latent_dist.mode()
    lat0 = lat0.unsqueeze(1).repeat(1, s.frames, 1, 1, 1)
    # 3. added time ids: SVD was conditioned on fps - 1
    ids = torch.tensor([[s.fps - 1, s.motion_bucket_id, s.noise_aug_strength]], dtype=emb.dtype)
    if guided:
        emb = torch.cat([torch.zeros_like(emb), emb])
        lat0 = torch.cat([torch.zeros_like(lat0), lat0])
        ids = torch.cat([ids, ids])
    # 4. schedule and start noise
    sched = EulerDiscreteScheduler.from_config(c.scheduler_config)
    sched.set_timesteps(s.steps)
    channels = int(c.unet.config.in_channels) // 2
    shape = (1, s.frames, channels, h // c.vae_scale, w // c.vae_scale)
    latents = torch.randn(shape, generator=gen).to(c.dtype) * sched.init_noise_sigma
    scale = torch.linspace(s.min_guidance, s.max_guidance, s.frames)[None, :, None, None, None].to(c.dtype)
    # 5. guided Euler steps
    n = len(sched.timesteps)
    for i, t in enumerate(sched.timesteps):
        x = torch.cat([latents] * 2) if guided else latents
        x = torch.cat([sched.scale_model_input(x, t), lat0], dim=2)
        pred = fn(x, t, emb, ids)
        if guided:
            e_u, e_c = pred.chunk(2)
            pred = e_u + scale * (e_c - e_u)
        latents = sched.step(pred, t, latents).prev_sample
        if progress is not None:
            progress(i + 1, n)
    return latents


@torch.no_grad()
def decode(c: SVDComponents, latents: torch.Tensor, chunk: int = 8) -> np.ndarray:
    """Latents ``[1, T, C, h, w]`` -> uint8 frames ``[T, H, W, 3]`` (the temporal decoder, in chunks)."""
    flat = latents.flatten(0, 1) / c.vae.config.scaling_factor
    out = []
    for i in range(0, flat.shape[0], chunk):
        part = flat[i : i + chunk]
        out.append(c.vae.decode(part, num_frames=part.shape[0]).sample)
    x = torch.cat(out).float()
    return ((x / 2 + 0.5).clamp(0, 1) * 255).round().permute(0, 2, 3, 1).numpy().astype(np.uint8)
