"""Build ``models/tiny-random/revideo``: the ReVideo layout (engines/revideo) with random weights.

``StableVideoDiffusionPipeline``'s components (a ``UNetSpatioTemporalConditionModel``, an
``AutoencoderKLTemporalDecoder``, a ``CLIPVisionModelWithProjection`` and its processor, SVD's EDM Euler
scheduler), a :class:`~engines.revideo.control.ControlModule` whose zero convolutions are random (so
that the tiny model reacts to its conditions) and the base's temporal K/V as ``base_kv.safetensors``,
all tiny. Run ``python -m toyworld.tiny_revideo``.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from recut.store import swap_in_folder
from toyworld.tinymodels import DEFAULT_OUT

#: SVD-XT's scheduler (EDM Euler, v-prediction, Karras sigmas).
SVD_SCHEDULER = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "sigma_max": 700.0,
    "sigma_min": 0.002,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "timestep_type": "continuous",
    "use_karras_sigmas": True,
}


def build_tiny_revideo(out_dir: Path = DEFAULT_OUT, seed: int = 0) -> None:
    import torch
    from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    from engines.common.finetune import save_delta
    from engines.revideo.control import ControlModule, temporal_kv_names
    from toyworld.zoo.svd import build_unet

    out_dir = Path(out_dir)
    staging = out_dir / ".revideo.tmp"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    torch.manual_seed(seed + 11)
    unet = build_unet(32, frames=4, time_id_dim=8, channels=(32, 32), heads=2).eval()
    unet.to(torch.float16).save_pretrained(staging / "unet")  # float16 on disk: half the bytes
    vae = AutoencoderKLTemporalDecoder(
        block_out_channels=(32, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 3,
        latent_channels=4,
        layers_per_block=1,
    ).eval()
    vae.to(torch.float16).save_pretrained(staging / "vae")
    cfg = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        projection_dim=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
    )
    CLIPVisionModelWithProjection(cfg).eval().save_pretrained(staging / "image_encoder")
    CLIPImageProcessor(crop_size=32, size=32).save_pretrained(staging / "feature_extractor")
    EulerDiscreteScheduler.from_config(SVD_SCHEDULER).save_pretrained(staging / "scheduler")
    torch.manual_seed(seed + 12)
    unet.float()
    control = ControlModule.from_unet(unet, encoder_channels=(8, 16, 16), encoder_strides=(2, 2, 1))
    with torch.no_grad():  # random, not zero: the tiny model should react to its conditions
        for conv in [
            *control.zero_convs,
            control.mid_zero_conv,
            control.content_encoder.out,
            control.motion_encoder.out,
        ]:
            conv.weight.normal_(0.0, 0.02)
    control.to(torch.float16).save_pretrained(staging / "control")
    named = dict(unet.named_parameters())
    save_delta({n: named[n] for n in temporal_kv_names(unet)}, staging / "base_kv.safetensors")
    swap_in_folder(staging, out_dir / "revideo")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the tiny-random folder")
    parser.add_argument("--seed", type=int, default=0, help="torch seed for the random weights")
    args = parser.parse_args(argv)
    build_tiny_revideo(args.out, args.seed)
    print(f"wrote {args.out / 'revideo'}")


if __name__ == "__main__":
    main()
