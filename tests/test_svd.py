"""The SVD-class image-to-video sampler (engines.common.svd) is diffusers' StableVideoDiffusionPipeline."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from engines.common.svd import I2VSettings, SVDComponents, decode, sample
from toyworld.tiny_revideo import SVD_SCHEDULER

#: The public scheduler config of stabilityai/stable-video-diffusion-img2vid-xt.


@pytest.fixture(scope="module")
def tiny() -> SVDComponents:
    from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    unet = UNetSpatioTemporalConditionModel(
        sample_size=8,
        in_channels=8,
        out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        block_out_channels=(32, 64),
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=24,
        layers_per_block=1,
        cross_attention_dim=32,
        num_attention_heads=(2, 4),
    ).eval()
    vae = AutoencoderKLTemporalDecoder(
        block_out_channels=(32, 64),
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        latent_channels=4,
        layers_per_block=1,
    ).eval()
    cfg = CLIPVisionConfig(
        hidden_size=32, projection_dim=32, num_hidden_layers=2, num_attention_heads=4, image_size=224, patch_size=32
    )
    encoder = CLIPVisionModelWithProjection(cfg).eval()
    proc = CLIPImageProcessor(crop_size=224, size=224)
    return SVDComponents(unet, vae, encoder, proc, dict(SVD_SCHEDULER))


def _pipe(c: SVDComponents) -> Any:
    from diffusers import EulerDiscreteScheduler, StableVideoDiffusionPipeline

    sched = EulerDiscreteScheduler.from_config(c.scheduler_config)
    return StableVideoDiffusionPipeline(c.vae, c.image_encoder, c.unet, sched, c.feature_extractor)


@pytest.mark.parametrize("guidance", [(1.0, 3.0), (1.0, 1.0)])
def test_the_sampler_is_the_svd_pipeline(tiny: SVDComponents, guidance: tuple[float, float]) -> None:
    from PIL import Image

    frame = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    s = I2VSettings(frames=4, steps=3, fps=7, motion_bucket_id=100, min_guidance=guidance[0], max_guidance=guidance[1])
    ours = sample(tiny, frame, s)
    theirs = _pipe(tiny)(
        Image.fromarray(frame),
        height=32,
        width=32,
        num_frames=4,
        num_inference_steps=3,
        min_guidance_scale=guidance[0],
        max_guidance_scale=guidance[1],
        fps=7,
        motion_bucket_id=100,
        noise_aug_strength=0.02,
        generator=torch.Generator().manual_seed(0),
        output_type="latent",
    ).frames
    torch.testing.assert_close(ours, theirs)
    assert ours.shape == (1, 4, 4, 16, 16)


def test_decoding_and_the_unet_hook(tiny: SVDComponents) -> None:
    frame = np.full((32, 32, 3), 128, np.uint8)
    s = I2VSettings(frames=4, steps=2)
    seen: list[tuple[int, ...]] = []

    def fn(x: torch.Tensor, t: Any, emb: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(x.shape))
        return tiny.unet(x, t, encoder_hidden_states=emb, added_time_ids=ids, return_dict=False)[0]

    lat = sample(tiny, frame, s, unet_fn=fn)
    assert seen == [(2, 4, 8, 16, 16)] * 2  # cond + uncond, latents and first-frame latent concatenated
    torch.testing.assert_close(lat, sample(tiny, frame, s))
    frames = decode(tiny, lat, chunk=3)
    assert frames.shape == (4, 32, 32, 3) and frames.dtype == np.uint8
