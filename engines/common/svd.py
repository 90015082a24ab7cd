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
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)[None].float() / 255.0 * 2.0 - 1.0


@torch.no_grad()
def image_embeddings(encoder: Any, processor: Any, images: np.ndarray, dtype: Any = torch.float32) -> torch.Tensor:
    """CLIP image embeddings ``[N, 1, D]`` of uint8 frames ``[N, H, W, 3]``, preprocessed as SVD was trained
    (antialiased resize to the encoder's input size, then the processor's normalisation)."""
    size = int(encoder.config.image_size)
    x = torch.from_numpy(np.array(images, dtype=np.uint8)).permute(0, 3, 1, 2).float() / 255.0
    x = (_resize_with_antialiasing(x * 2.0 - 1.0, (size, size)) + 1.0) / 2.0
    pv = processor(
        images=x, do_normalize=True, do_center_crop=False, do_resize=False, do_rescale=False, return_tensors="pt"
    ).pixel_values
    return encoder(pv.to(dtype)).image_embeds.unsqueeze(1)


def image_embedding(c: SVDComponents, image: np.ndarray) -> torch.Tensor:
    """The CLIP image embedding ``[1, 1, D]`` of one uint8 frame ``[H, W, 3]``."""
    return image_embeddings(c.image_encoder, c.feature_extractor, image[None], c.dtype)


def image_latent(vae: Any, pixels: torch.Tensor) -> torch.Tensor:
    """The conditioning latent of (noise-augmented) first frames ``[N, 3, H, W]`` in [-1, 1]: the VAE
    posterior's mode, unscaled, as SVD concatenates it."""
    return vae.encode(pixels).latent_dist.mode()


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
    lat0 = image_latent(c.vae, image.to(c.dtype))
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
    """Latents ``[1, T, C, h, w]`` -> uint8 frames ``[T, H, W, 3]``: the temporal decoder in chunks of
    ``chunk`` frames (``AutoencoderKLTemporalDecoder``), or an image VAE frame by frame in chunks."""
    import inspect

    flat = latents.flatten(0, 1) / c.vae.config.scaling_factor
    temporal = "num_frames" in inspect.signature(c.vae.decode).parameters
    out = []
    for i in range(0, flat.shape[0], chunk):
        part = flat[i : i + chunk]
        kw = {"num_frames": part.shape[0]} if temporal else {}
        out.append(c.vae.decode(part, **kw).sample)
    x = torch.cat(out).float()
    return ((x / 2 + 0.5).clamp(0, 1) * 255).round().permute(0, 2, 3, 1).numpy().astype(np.uint8)


# --------------------------------------------------------------------------- the UNet as two halves


@dataclass
class EncoderPass:
    """What the encoder half of a ``UNetSpatioTemporalConditionModel`` leaves for the decoder half."""

    hidden: torch.Tensor  # the mid block's output [B*T, C, h', w']
    skips: tuple[torch.Tensor, ...]  # conv_in's output and every down block's outputs
    temb: torch.Tensor  # [B*T, E]
    context: torch.Tensor  # encoder hidden states, [B*T, 1, D]
    indicator: torch.Tensor  # image_only_indicator [B, T]
    batch: int
    frames: int


def encoder_pass(
    unet: Any,
    sample: torch.Tensor,
    timestep: Any,
    encoder_hidden_states: torch.Tensor,
    added_time_ids: torch.Tensor,
    feature: torch.Tensor | None = None,
) -> EncoderPass:
    """The first half of ``UNetSpatioTemporalConditionModel.forward`` (time embedding, conv_in, down
    blocks, mid block) on any module that has those parts; ``feature`` ``[B*T, C0, h, w]`` is added to
    conv_in's output (where a ControlNet adds its condition)."""
    b, t = sample.shape[:2]
    ts = torch.as_tensor(timestep, device=sample.device)
    if ts.ndim == 0:
        ts = ts[None]
    ts = ts.expand(b)
    emb = unet.time_embedding(unet.time_proj(ts).to(sample.dtype))
    time_embeds = unet.add_time_proj(added_time_ids.flatten()).reshape(b, -1).to(emb.dtype)
    emb = (emb + unet.add_embedding(time_embeds)).repeat_interleave(t, dim=0)
    ctx = encoder_hidden_states.repeat_interleave(t, dim=0)
    h = unet.conv_in(sample.flatten(0, 1))
    if feature is not None:
        h = h + feature
    indicator = torch.zeros(b, t, dtype=h.dtype, device=h.device)
    skips: tuple[torch.Tensor, ...] = (h,)
    for block in unet.down_blocks:
        kw = {"encoder_hidden_states": ctx} if getattr(block, "has_cross_attention", False) else {}
        h, res = block(hidden_states=h, temb=emb, image_only_indicator=indicator, **kw)
        skips += res
    h = unet.mid_block(hidden_states=h, temb=emb, encoder_hidden_states=ctx, image_only_indicator=indicator)
    return EncoderPass(h, skips, emb, ctx, indicator, b, t)


def unet_forward(
    unet: Any,
    sample: torch.Tensor,
    timestep: Any,
    encoder_hidden_states: torch.Tensor,
    added_time_ids: torch.Tensor,
    down_residuals: tuple[torch.Tensor, ...] | None = None,
    mid_residual: torch.Tensor | None = None,
) -> torch.Tensor:
    """``unet(sample, timestep, encoder_hidden_states, added_time_ids)`` with ControlNet residuals added
    to the skip features and the mid block's output (diffusers' SVD UNet takes none); equal to the UNet's
    own forward when both are None (tests/test_svd.py)."""
    e = encoder_pass(unet, sample, timestep, encoder_hidden_states, added_time_ids)
    skips, h = e.skips, e.hidden
    if down_residuals is not None:
        skips = tuple(s + r for s, r in zip(skips, down_residuals, strict=True))
    if mid_residual is not None:
        h = h + mid_residual
    for block in unet.up_blocks:
        res, skips = skips[-len(block.resnets) :], skips[: -len(block.resnets)]
        kw = {"encoder_hidden_states": e.context} if getattr(block, "has_cross_attention", False) else {}
        h = block(hidden_states=h, temb=e.temb, res_hidden_states_tuple=res, image_only_indicator=e.indicator, **kw)
    h = unet.conv_out(unet.conv_act(unet.conv_norm_out(h)))
    return h.reshape(e.batch, e.frames, *h.shape[1:])
