"""The toy SVD-class image-to-video model: first frame -> 8-frame clip, on the toy VAE's 16x16 latents.

The model is diffusers' ``UNetSpatioTemporalConditionModel`` (the toy T2I's widths, 64/64, spatial and
temporal attention at the 8x8 level and in the mid block), laid out as ``StableVideoDiffusionPipeline`` expects:
``unet``, ``vae`` (the toy ``AutoencoderKL``: the engine decodes frame by frame), ``image_encoder`` and
``feature_extractor`` (the toy CLIP's vision tower), ``scheduler`` (EDM Euler, v-prediction).

Training is SVD's: EDM preconditioning (c_in = 1/√(σ²+1), c_noise = ¼ log σ, v-target), log-normal σ,
the noise-augmented first-frame latent concatenated to z_t, the first frame's CLIP embedding as the
cross-attention context, added time ids (fps - 1, motion bucket, augmentation); 10 % of the samples
drop both conditions (the unconditional branch of guidance). The UNet starts from the toy T2I
(:func:`init_from_t2i`: spatial layers copied, ``conv_in`` widened with zero weights, the temporal
branches starting as identities); the saved weights are an EMA of the trained ones. Data: toy clips of
1-2 objects with any of the toy motions (static, left/right/up/down, circle, wave), no pan.
Checkpoints (weights, EMA, optimiser) every ``checkpoint_every`` steps; a rerun resumes from the last one.

Quality bar (held-out single-object scenes, 25 Euler steps, guidance 1 -> 3): the object keeps its
colour and shape on every frame in >= 80 % of the scenes (the content comes from the first frame).

CLI::

    python -m toyworld.zoo.svd train [--out DIR] [--quick] [--threads N] [--steps N]
    python -m toyworld.zoo.svd check [--out DIR] [--scenes N]
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engines.common.svd import I2VSettings, SVDComponents, decode, image_embeddings, image_latent, sample
from toyworld import judge
from toyworld import scene as toy
from toyworld.zoo import t2i, t2v
from toyworld.zoo._util import (
    EMA,
    load_checkpoint,
    log,
    lr_at,
    save_checkpoint,
    save_float16,
    set_threads,
    write_info,
    write_model_folder,
)

TOY = t2i.TOY_ROOT
DEFAULT_OUT = TOY / "svd"
FRAMES = 8
TRAIN_SEED = 1400
HELDOUT_SEED = 9400
FPS = 7
MOTION_BUCKET = 127
P_MEAN, P_STD = 0.3, 1.4
BAR_RATE = 0.8
#: EDM Euler as SVD's scheduler, with the σ range of a 16x16-latent model.
SCHEDULER = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "sigma_max": 80.0,
    "sigma_min": 0.002,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "timestep_type": "continuous",
    "use_karras_sigmas": True,
}


@dataclass(frozen=True)
class I2VRecipe:
    clips: int = 1500
    batch: int = 8
    steps: int = 6000
    lr: float = 2e-4
    #: The LR falls from ``lr`` over the first ``decay_steps`` (warm-up, cosine), then stays at ``tail_lr``.
    decay_steps: int = 3000
    tail_lr: float = 5e-5
    ema_decay: float = 0.995
    uncond: float = 0.1
    max_aug: float = 0.1
    checkpoint_every: int = 250
    seed: int = 0


QUICK = I2VRecipe(clips=6, batch=2, steps=3, decay_steps=3, checkpoint_every=2)


# --------------------------------------------------------------------------- data


def i2v_scenes(seed: int, count: int, frames: int = FRAMES, max_objects: int = 2) -> list[toy.ToyScene]:
    """Clips of 1-``max_objects`` objects with any toy motion, no pan."""
    return [
        toy.sample_scene(np.random.default_rng([seed, i]), max_objects=max_objects, frames=frames, pan_prob=0.0)
        for i in range(count)
    ]


def load_parts() -> tuple[Any, Any, Any]:
    """(vae, image encoder, feature extractor): the toy VAE and the toy CLIP's vision tower."""
    from diffusers import AutoencoderKL
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the CLIPModel checkpoint's text tower is not wanted here
    vae = AutoencoderKL.from_pretrained(TOY / "vae").eval().requires_grad_(False)
    encoder = CLIPVisionModelWithProjection.from_pretrained(TOY / "clip").eval().requires_grad_(False)
    return vae, encoder, CLIPImageProcessor.from_pretrained(TOY / "clip")


@dataclass
class ClipData:
    frames: np.ndarray  # uint8 [N, T, H, W, 3]
    latents: torch.Tensor  # scaled VAE latents [N, T, C, h, w]
    emb: torch.Tensor  # CLIP image embedding of frame 0 [N, 1, D]


def build_data(
    scenes: Sequence[toy.ToyScene], vae: Any, encoder: Any, proc: Any, cache: Path | None, key: str
) -> ClipData:
    frames = np.stack([toy.render(s).frames for s in scenes])
    n, t = frames.shape[:2]
    lat = t2i.cached_latents(vae, key, lambda: frames.reshape(n * t, *frames.shape[2:]), cache)
    with torch.no_grad():
        emb = torch.cat([image_embeddings(encoder, proc, frames[i : i + 256, 0]) for i in range(0, n, 256)])
    return ClipData(frames, lat.reshape(n, t, *lat.shape[1:]), emb)


def to_pixels(frames: np.ndarray) -> torch.Tensor:
    """uint8 ``[..., H, W, 3]`` -> float ``[..., 3, H, W]`` in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).movedim(-1, -3).float() / 127.5 - 1.0


# --------------------------------------------------------------------------- the EDM loss


#: ``fn(model input [B, T, 2C, h, w], c_noise [B], image embedding [B, 1, D], time ids [B, 3])``.
ModelFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def edm_loss(
    fn: ModelFn, x0: torch.Tensor, first: torch.Tensor, emb: torch.Tensor, vae: Any, gen: torch.Generator, r: I2VRecipe
) -> torch.Tensor:
    """SVD's training loss for clips ``x0`` ``[B, T, C, h, w]`` whose first frames are ``first``
    ``[B, 3, H, W]`` in [-1, 1] (EDM with σ_data = 1: the v-target, which carries EDM's weighting)."""
    b, t = x0.shape[:2]
    sigma = torch.exp(P_MEAN + P_STD * torch.randn(b, generator=gen))
    s = sigma[:, None, None, None, None]
    noise = torch.randn(x0.shape, generator=gen)
    xt = x0 + s * noise
    c_in, c_skip, c_out = 1 / torch.sqrt(s**2 + 1), 1 / (s**2 + 1), -s / torch.sqrt(s**2 + 1)
    aug = torch.rand(b, generator=gen) * r.max_aug
    with torch.no_grad():
        lat0 = image_latent(vae, first + aug[:, None, None, None] * torch.randn(first.shape, generator=gen))
    keep = (torch.rand(b, generator=gen) >= r.uncond).float()
    lat0 = (lat0 * keep[:, None, None, None])[:, None].expand(-1, t, -1, -1, -1)
    ids = torch.stack([torch.full((b,), FPS - 1.0), torch.full((b,), float(MOTION_BUCKET)), aug], 1)
    pred = fn(torch.cat([xt * c_in, lat0], dim=2), 0.25 * torch.log(sigma), emb * keep[:, None, None], ids)
    target = (x0 - c_skip * xt) / c_out
    return torch.nn.functional.mse_loss(pred, target)


# --------------------------------------------------------------------------- the model


#: The toy SVD's UNet widths and heads: the toy T2I's, so that its spatial layers start from the T2I's.
CHANNELS = t2i.T2I_CHANNELS
HEADS = t2i.T2I_HEADS


def build_unet(
    cross_dim: int,
    frames: int = FRAMES,
    time_id_dim: int = 16,
    channels: tuple[int, int] = CHANNELS,
    heads: int = HEADS,
) -> Any:
    """The toy SVD's UNet (also the tiny-random one's, with its own sizes): two levels, attention at the
    8x8 level and in the mid block (the toy T2I's layout); each of the 3 added time ids embedded in
    ``time_id_dim``."""
    from diffusers import UNetSpatioTemporalConditionModel

    return UNetSpatioTemporalConditionModel(
        sample_size=16,
        in_channels=8,
        out_channels=4,
        down_block_types=("DownBlockSpatioTemporal", "CrossAttnDownBlockSpatioTemporal"),
        up_block_types=("CrossAttnUpBlockSpatioTemporal", "UpBlockSpatioTemporal"),
        block_out_channels=channels,
        addition_time_embed_dim=time_id_dim,
        projection_class_embeddings_input_dim=3 * time_id_dim,
        layers_per_block=1,
        cross_attention_dim=cross_dim,
        transformer_layers_per_block=1,
        num_attention_heads=(heads, heads),
        num_frames=frames,
    )


#: The output layers of every branch the image model lacks (temporal ResNets and transformers, the
#: frame-position and time-id embeddings): zero at the start, so the UNet starts as the T2I per frame.
_NEW_BRANCH_OUTPUTS = re.compile(
    r"temporal_res_block\.conv2\.|temporal_transformer_blocks\.\d+\.(attn1|attn2)\.to_out\.0\."
    r"|temporal_transformer_blocks\.\d+\.ff(_in)?\.net\.2\.|time_pos_embed\.linear_2\.|add_embedding\.linear_2\."
)


def _spatial_name(name: str) -> str:
    """A T2I UNet tensor's name in the SVD UNet (a ResNet is the spatial half of a spatio-temporal one)."""
    return re.sub(r"(resnets\.\d+)\.", r"\1.spatial_res_block.", name)


def init_from_t2i(unet: Any, t2i_unet: str | Path = TOY / "t2i" / "unet") -> int:
    """Start the SVD UNet from the toy T2I (the guide's "start from a trained model"): every spatial
    ResNet, transformer, the time embedding and ``conv_out`` copied (a T2I ``resnets.i.X`` is an SVD
    ``resnets.i.spatial_res_block.X``); ``conv_in`` widened with zero weights for the concatenated
    first-frame latent; the new branches' output layers zeroed. Returns the tensors set."""
    from diffusers import UNet2DConditionModel

    from engines.common.structure import widen_conv_in

    image = UNet2DConditionModel.from_pretrained(t2i_unet)
    widen_conv_in(image, unet.config.in_channels - image.config.in_channels)
    copied = t2v.copy_matching(unet, image.state_dict(), rename=_spatial_name)
    zeroed = {k: torch.zeros_like(v) for k, v in unet.state_dict().items() if _NEW_BRANCH_OUTPUTS.search(k)}
    unet.load_state_dict(zeroed, strict=False)
    return copied + len(zeroed)


def train(
    out: str | Path = DEFAULT_OUT,
    quick: bool = False,
    seed: int = 0,
    threads: int = 1,
    recipe: I2VRecipe | None = None,
) -> dict[str, Any]:
    """Steps: 1. data; 2. the UNet (resumed from the last checkpoint); 3. save; 4. check."""
    set_threads(threads)
    r = replace(recipe or (QUICK if quick else I2VRecipe()), seed=seed)
    out = Path(out)
    work = out.with_name(out.name + ".work")
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    # 1. data
    vae, encoder, proc = load_parts()
    data = build_data(
        i2v_scenes(TRAIN_SEED, r.clips),
        vae,
        encoder,
        proc,
        None if quick else work / "cache",
        f"i2v-{TRAIN_SEED}-{r.clips}",
    )
    # 2. the UNet
    torch.manual_seed(r.seed)
    unet = build_unet(int(encoder.config.projection_dim))
    log(f"svd: {init_from_t2i(unet)} tensors set from the toy T2I")
    ema_unet = copy.deepcopy(unet).requires_grad_(False)
    ema = EMA(unet, r.ema_decay, into=ema_unet)
    opt = torch.optim.AdamW(unet.parameters(), lr=r.lr, weight_decay=1e-2)
    modules = {"unet": unet, "ema": ema_unet}
    start = load_checkpoint(work / "checkpoint", modules, opt)
    if start:
        log(f"svd: resumed at step {start}")
    unet.train()

    def fn(x: torch.Tensor, c_noise: torch.Tensor, emb: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return unet(x, c_noise, encoder_hidden_states=emb, added_time_ids=ids).sample

    gen = torch.Generator().manual_seed(r.seed * 1000 + start)
    n = len(data.frames)
    losses: list[float] = []
    for step in range(start, r.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step / r.decay_steps, r.lr) if step < r.decay_steps else r.tail_lr
        idx = torch.randint(0, n, (r.batch,), generator=gen)
        loss = edm_loss(fn, data.latents[idx], to_pixels(data.frames[idx.numpy(), 0]), data.emb[idx], vae, gen, r)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        ema.update(unet, step)
        losses.append(float(loss.detach()))
        if (step + 1) % 50 == 0:
            log(f"svd step {step + 1}/{r.steps} loss {np.mean(losses[-50:]):.4f} ({time.time() - t0:.0f} s)")
        if (step + 1) % r.checkpoint_every == 0 or step + 1 == r.steps:
            save_checkpoint(work / "checkpoint", step + 1, modules, opt)
    # 3. save (the EMA weights)
    save_model(out, ema_unet.eval())
    info = {
        "recipe": "svd",
        "settings": asdict(r),
        "quick": quick,
        "train_time_s": round(time.time() - t0, 1),
        "final_loss": round(float(np.mean(losses[-50:])), 5) if losses else None,
        "resumed_from": start,
    }
    # 4. check
    info["metrics"] = check(out, scenes=2 if quick else 20, steps=2 if quick else 25)
    write_info(out, info)
    return info


def save_model(out: Path, unet: Any) -> None:
    """The model folder in ``StableVideoDiffusionPipeline``'s layout: the UNet (float16 on disk) and the
    scheduler, with links to the toy VAE and CLIP."""
    from diffusers import EulerDiscreteScheduler

    def fill(tmp: Path) -> None:
        save_float16(unet, tmp / "unet")
        EulerDiscreteScheduler.from_config(SCHEDULER).save_pretrained(tmp / "scheduler")

    links = {"vae": TOY / "vae", "image_encoder": TOY / "clip", "feature_extractor": TOY / "clip"}
    index = {
        "_class_name": "StableVideoDiffusionPipeline",
        "unet": ["diffusers", "UNetSpatioTemporalConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
        "feature_extractor": ["transformers", "CLIPImageProcessor"],
        "scheduler": ["diffusers", "EulerDiscreteScheduler"],
    }
    write_model_folder(out, fill, links, index)


def load(folder: str | Path = DEFAULT_OUT) -> SVDComponents:
    """The components of a toy SVD folder (float32)."""
    from diffusers import UNetSpatioTemporalConditionModel

    folder = Path(folder)
    vae, encoder, proc = load_parts()
    unet = UNetSpatioTemporalConditionModel.from_pretrained(folder / "unet").float().eval()
    cfg = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    return SVDComponents(unet, vae, encoder, proc, cfg)


# --------------------------------------------------------------------------- check


def heldout_scenes(n: int) -> list[toy.ToyScene]:
    """Single-object scenes the training never drew."""
    return [s for s in i2v_scenes(HELDOUT_SEED, 3 * n) if len(s.objects) == 1][:n]


def check(folder: str | Path = DEFAULT_OUT, scenes: int = 20, steps: int = 25) -> dict[str, Any]:
    """From each held-out first frame: does the object keep its colour and shape on every frame, and
    how far does it move (the centroid's path length, in pixels)?"""
    c = load(folder)
    rows = []
    for i, s in enumerate(heldout_scenes(scenes)):
        clip = toy.render(s)
        lat = sample(c, clip.frames[0], I2VSettings(frames=FRAMES, steps=steps, fps=FPS, seed=i))
        out = decode(c, lat)
        obj = s.objects[0]
        j = judge.judge_object(out, obj.colour, obj.shape, min_present=1.0)
        track = j["track"]
        moved = float(np.nansum(np.linalg.norm(np.diff(track, axis=0), axis=1)))
        rows.append({"motion": obj.motion, "kept": bool(j["colour"] and j["shape"]), "path_px": round(moved, 2)})
    rate = float(np.mean([r["kept"] for r in rows]))
    return {
        "scenes": len(rows),
        "steps": steps,
        "kept_rate": rate,
        "mean_path_px": round(float(np.mean([r["path_px"] for r in rows])), 2),
        "passed": rate >= BAR_RATE,
        "rows": rows,
    }


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m toyworld.zoo.svd")
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("train")
    a.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a.add_argument("--quick", action="store_true")
    a.add_argument("--threads", type=int, default=1)
    a.add_argument("--steps", type=int, default=None)
    c = sub.add_parser("check")
    c.add_argument("--out", type=Path, default=DEFAULT_OUT)
    c.add_argument("--scenes", type=int, default=20)
    c.add_argument("--steps", type=int, default=25)
    args = p.parse_args(argv)
    if args.cmd == "train":
        r = QUICK if args.quick else I2VRecipe()
        info = train(args.out, args.quick, threads=args.threads, recipe=replace(r, steps=args.steps or r.steps))
        print(json.dumps(info | {"metrics": {k: v for k, v in info["metrics"].items() if k != "rows"}}, indent=1))
    else:
        set_threads(2)
        print(json.dumps(check(args.out, args.scenes, args.steps), indent=1))


if __name__ == "__main__":
    main()
