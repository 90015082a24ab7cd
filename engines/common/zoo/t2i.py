"""Toy text-to-image model: a small SD-1.5-layout pipeline that really learned the toy world.

A small :class:`diffusers.UNet2DConditionModel` is trained (epsilon prediction, DDPM
objective, SD-1.5 noise schedule) on the frozen toy VAE's ``4x16x16`` latents of
single frames of static toy scenes (:mod:`recut.toy`), conditioned on the frozen toy
text encoder's hidden states of the scene caption (10% empty captions for
classifier-free guidance).  The result is saved as an SD-1.5-layout pipeline folder::

    models/toy/t2i/model_index.json    StableDiffusionPipeline (no safety checker)
    models/toy/t2i/unet/               the trained UNet2DConditionModel
    models/toy/t2i/scheduler/          DDIMScheduler config (scaled_linear 0.00085-0.012, 1000 steps)
    models/toy/t2i/{vae,text_encoder,tokenizer} -> ../vae, ../text_encoder, ../tokenizer (relative symlinks)

API
---
* :func:`train(out_dir, quick=False, seed=0, components=None)` -> dict of figures.
* :func:`check(model_dir, n_prompts=48, steps=30, guidance=5.0)` -> dict of quality figures
  (fraction of held-out single-object prompts whose sample shows the prompt's colour and shape).
* :func:`load_pipeline`, :func:`sample`, :func:`heldout_prompts`, :func:`judge_image`.

``components`` is the folder holding ``vae/``, ``text_encoder/``, ``tokenizer/``; by default
``models/toy`` when those exist, else ``models/tiny-random/sd`` (a random stand-in, for
smoke tests only).

CLI: ``python -m engines.common.zoo.t2i train [--quick] [--out DIR]`` / ``check [DIR]``.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recut import toy

REPO = Path(__file__).resolve().parents[3]
TOY_ROOT = REPO / "models" / "toy"
TINY_ROOT = REPO / "models" / "tiny-random" / "sd"
DEFAULT_OUT = TOY_ROOT / "t2i"
COMPONENTS = ("vae", "text_encoder", "tokenizer")

#: SD-1.5 noise schedule.
SCHEDULE = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
    prediction_type="epsilon",
)

#: Architecture / optimisation of the committed model (sized for ~25 min on 2 shared CPU cores).
T2I_CHANNELS = (32, 64)
T2I_HEADS = 4
LR = 5e-4
EMA_DECAY = 0.995
TRAIN_STEPS = 1500
TRAIN_BATCH = 64

TRAIN_SEED = 1000  # toy dataset seed for training scenes
HELDOUT_SEED = 9000  # toy dataset seed for held-out prompts (disjoint stream)


# --------------------------------------------------------------------------- components


def default_components() -> Path:
    """``models/toy`` when its vae/text_encoder/tokenizer exist, else the tiny random SD stand-in."""
    if all(
        (TOY_ROOT / c / n).exists()
        for c, n in (("vae", "config.json"), ("text_encoder", "config.json"), ("tokenizer", "tokenizer_config.json"))
    ):
        return TOY_ROOT
    return TINY_ROOT


def load_components(root: str | os.PathLike[str] | None = None):
    """(tokenizer, text_encoder, vae), frozen, eval mode, float32 CPU."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTextModel, CLIPTokenizer

    root = Path(root) if root is not None else default_components()
    tok = CLIPTokenizer.from_pretrained(root / "tokenizer")
    te = CLIPTextModel.from_pretrained(root / "text_encoder").eval().requires_grad_(False)
    vae = AutoencoderKL.from_pretrained(root / "vae").eval().requires_grad_(False)
    return tok, te, vae


@torch.no_grad()
def encode_text(tok, te, prompts: Sequence[str], batch: int = 256) -> torch.Tensor:
    """Hidden states exactly as ``StableDiffusionPipeline.encode_prompt`` computes them."""
    out = []
    for i in range(0, len(prompts), batch):
        ids = tok(
            list(prompts[i : i + batch]),
            padding="max_length",
            max_length=tok.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        mask = None
        if getattr(te.config, "use_attention_mask", False):
            mask = (ids != tok.pad_token_id).long()
        out.append(te(ids, attention_mask=mask)[0])
    return torch.cat(out)


@torch.no_grad()
def encode_images(vae, frames: np.ndarray, batch: int = 128) -> torch.Tensor:
    """uint8 ``[N,H,W,3]`` -> scaled latents ``[N,4,h,w]`` (posterior mean * scaling_factor)."""
    out = []
    sf = vae.config.scaling_factor
    for i in range(0, len(frames), batch):
        x = torch.from_numpy(frames[i : i + batch]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        out.append(vae.encode(x).latent_dist.mean * sf)
    return torch.cat(out)


def latent_size(vae, pixels: int = 64) -> int:
    return pixels // (2 ** (len(vae.config.block_out_channels) - 1))


# --------------------------------------------------------------------------- data


def t2i_scenes(seed: int, count: int, two_object_frac: float = 0.25) -> list[toy.ToyScene]:
    """Static single-frame scenes: mostly one object, ``two_object_frac`` with two."""
    scenes = []
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        k = 2 if rng.random() < two_object_frac else 1
        scenes.append(
            toy.sample_scene(rng, max_objects=1, frames=1, size=64, motions=("static",), pan_prob=0.0)
            if k == 1
            else _two_object_scene(rng)
        )
    return scenes


def _two_object_scene(rng: np.random.Generator) -> toy.ToyScene:
    while True:
        s = toy.sample_scene(rng, max_objects=2, frames=1, size=64, motions=("static",), pan_prob=0.0)
        if len(s.objects) == 2:
            return s


def render_frames(scenes: Sequence[toy.ToyScene]) -> np.ndarray:
    """uint8 ``[N,T,H,W,3]``."""
    return np.stack([toy.render(s).frames for s in scenes])


def heldout_prompts(n: int = 48, seed: int = HELDOUT_SEED) -> list[str]:
    """``n`` single-object static captions (a disjoint scene stream from training; the
    caption grammar is small, so some may coincide with training captions)."""
    return [
        toy.caption(
            toy.sample_scene(
                np.random.default_rng([seed, i]), max_objects=1, frames=1, motions=("static",), pan_prob=0.0
            )
        )
        for i in range(n)
    ]


# --------------------------------------------------------------------------- model


def build_unet(cross_dim: int, sample_size: int, quick: bool = False):
    from diffusers import UNet2DConditionModel

    ch = (16, 32) if quick else T2I_CHANNELS
    return UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=ch,
        layers_per_block=1,
        attention_head_dim=4 if quick else T2I_HEADS,
        norm_num_groups=8,
        cross_attention_dim=cross_dim,
    )


def ddpm_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(**{k: v for k, v in SCHEDULE.items() if k not in ("set_alpha_to_one", "steps_offset")})


def ddim_scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(**SCHEDULE)


class EMA:
    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = [p.detach().clone() for p in model.parameters()]

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        torch._foreach_lerp_(self.shadow, [p.detach() for p in model.parameters()], 1 - d)

    @torch.no_grad()
    def copy_to(self, model: torch.nn.Module) -> None:
        for s, p in zip(self.shadow, model.parameters()):
            p.copy_(s)


def fit_epsilon(
    unet,
    latents: torch.Tensor,
    cond_idx: torch.Tensor,
    embeds: torch.Tensor,
    null_embed: torch.Tensor,
    *,
    steps: int,
    batch: int,
    lr: float,
    seed: int,
    cfg_drop: float = 0.1,
    ema_decay: float = 0.999,
    log_every: int = 100,
    log=print,
) -> dict[str, Any]:
    """Epsilon-prediction DDPM training on precomputed latents ``[N,...]`` whose condition is
    ``embeds[cond_idx[n]]``; ``cfg_drop`` of conditions replaced by ``null_embed``.
    Works for 2-D (``[N,C,H,W]``) and 3-D (``[N,C,F,H,W]``) UNets.  Weights end as the EMA."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    sched = ddpm_scheduler()
    acp = sched.alphas_cumprod.float()
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.01)
    warm = max(1, min(200, steps // 10))
    lr_fn = lambda s: min(1.0, (s + 1) / warm) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))  # noqa: E731
    lr_sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_fn)
    ema = EMA(unet, ema_decay)
    unet.train()
    n = latents.shape[0]
    losses: list[float] = []
    t0 = time.perf_counter()
    for step in range(steps):
        idx = torch.randint(0, n, (batch,), generator=g)
        x0 = latents[idx]
        c = embeds[cond_idx[idx]]
        drop = torch.rand(batch, generator=g) < cfg_drop
        if drop.any():
            c = torch.where(drop[:, None, None], null_embed[None].expand_as(c), c)
        t = torch.randint(0, sched.config.num_train_timesteps, (batch,), generator=g)
        noise = torch.randn(x0.shape, generator=g)
        a = acp[t].view(-1, *([1] * (x0.dim() - 1)))
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        pred = unet(xt, t, encoder_hidden_states=c).sample
        loss = torch.nn.functional.mse_loss(pred, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        lr_sched.step()
        ema.update(unet, step)
        losses.append(loss.item())
        if log and (step % log_every == 0 or step == steps - 1):
            el = time.perf_counter() - t0
            log(f"step {step}/{steps} loss {np.mean(losses[-log_every:]):.4f} {el:.0f}s ({(step + 1) / el:.2f} it/s)")
    ema.copy_to(unet)
    unet.eval()
    return {
        "train_steps": steps,
        "batch": batch,
        "lr": lr,
        "final_loss": float(np.mean(losses[-min(200, len(losses)) :])),
        "fit_seconds": round(time.perf_counter() - t0, 1),
    }


# --------------------------------------------------------------------------- saving / loading


def link_components(out_dir: Path, components: Path) -> None:
    """Relative symlinks ``out_dir/{vae,text_encoder,tokenizer}`` -> ``components/...``."""
    for c in COMPONENTS:
        link = out_dir / c
        if link.is_symlink() or link.exists():
            if link.is_symlink() or link.is_file():
                link.unlink()
            else:
                import shutil

                shutil.rmtree(link)
        target = os.path.relpath(Path(components).resolve() / c, out_dir.resolve())
        link.symlink_to(target, target_is_directory=True)


def save_pipeline(
    out_dir: str | os.PathLike[str], unet, components: Path, pipeline_class: str, extra: dict | None = None
) -> Path:
    """Write ``unet/``, ``scheduler/``, ``model_index.json`` and the component symlinks."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    unet.save_pretrained(out / "unet")
    ddim_scheduler().save_pretrained(out / "scheduler")
    link_components(out, components)
    from diffusers import __version__ as dv

    index: dict[str, Any] = {
        "_class_name": pipeline_class,
        "_diffusers_version": dv,
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", type(unet).__name__],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    if pipeline_class == "StableDiffusionPipeline":
        index.update(
            feature_extractor=[None, None],
            image_encoder=[None, None],
            safety_checker=[None, None],
            requires_safety_checker=False,
        )
    (out / "model_index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    if extra is not None:
        (out / "train_info.json").write_text(json.dumps(extra, indent=2, sort_keys=True) + "\n")
    return out


def load_pipeline(model_dir: str | os.PathLike[str] = DEFAULT_OUT):
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import logging as dlog

    dlog.set_verbosity_error()
    pipe = StableDiffusionPipeline.from_pretrained(str(model_dir), safety_checker=None, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@torch.no_grad()
def sample(
    pipe, prompts: Sequence[str], steps: int = 30, guidance: float = 5.0, seed: int = 0, batch: int = 48
) -> np.ndarray:
    """uint8 ``[N,64,64,3]`` images, one per prompt (seeded generator per batch)."""
    outs = []
    for i in range(0, len(prompts), batch):
        g = torch.Generator().manual_seed(seed + i)
        r = pipe(
            list(prompts[i : i + batch]),
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=g,
            output_type="np",
            height=64,
            width=64,
        )
        outs.append(np.clip(np.rint(r.images * 255), 0, 255).astype(np.uint8))
    return np.concatenate(outs)


# --------------------------------------------------------------------------- judging


def _judge_fns():
    """Part A's ground-truth judge when available, else recut.toy helpers."""
    try:
        from engines.common.zoo import judge as j  # type: ignore

        return j
    except Exception:
        return None


def judge_image(img: np.ndarray, prompt: str, min_pixels: int = 12) -> dict[str, Any]:
    """Colour / shape of the (first) object named in ``prompt`` in a uint8 ``[H,W,3]`` image:
    the object's palette colour must cover >= ``min_pixels`` pixels, and the largest
    component of that colour mask must be classified as the named shape."""
    want = toy.parse_caption(prompt)[0]
    m = toy.colour_mask(img, want["colour"])
    colour_ok = int(m.sum()) >= min_pixels
    shape = toy.classify_shape(m, min_pixels=min_pixels) if colour_ok else "unknown"
    return {
        "colour_ok": colour_ok,
        "shape": shape,
        "shape_ok": colour_ok and shape == want["shape"],
        "pixels": int(m.sum()),
    }


def check(
    model_dir: str | os.PathLike[str] = DEFAULT_OUT,
    n_prompts: int = 48,
    steps: int = 30,
    guidance: float = 5.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Sample one image per held-out prompt and judge colour and shape."""
    pipe = load_pipeline(model_dir)
    prompts = heldout_prompts(n_prompts)
    t0 = time.perf_counter()
    imgs = sample(pipe, prompts, steps=steps, guidance=guidance, seed=seed)
    res = [judge_image(im, p) for im, p in zip(imgs, prompts)]
    return {
        "n_prompts": n_prompts,
        "steps": steps,
        "guidance": guidance,
        "sampler": "DDIM",
        "colour_acc": float(np.mean([r["colour_ok"] for r in res])),
        "colour_shape_acc": float(np.mean([r["shape_ok"] for r in res])),
        "sample_seconds": round(time.perf_counter() - t0, 1),
    }


# --------------------------------------------------------------------------- training


def train(
    out_dir: str | os.PathLike[str] = DEFAULT_OUT,
    quick: bool = False,
    seed: int = 0,
    components: str | os.PathLike[str] | None = None,
    steps: int | None = None,
    n_scenes: int | None = None,
    log=print,
) -> dict[str, Any]:
    """Train the toy T2I UNet and save the pipeline folder; returns figures."""
    t_start = time.perf_counter()
    torch.manual_seed(seed)
    comp = Path(components) if components is not None else default_components()
    tok, te, vae = load_components(comp)
    n_scenes = n_scenes or (64 if quick else 12000)
    steps = steps or (3 if quick else TRAIN_STEPS)
    batch = 8 if quick else TRAIN_BATCH
    scenes = t2i_scenes(TRAIN_SEED + seed, n_scenes)
    frames = render_frames(scenes)[:, 0]
    latents = encode_images(vae, frames)
    caps = [toy.caption(s) for s in scenes]
    uniq = sorted(set(caps))
    where = {c: i for i, c in enumerate(uniq)}
    embeds = encode_text(tok, te, uniq)
    null = encode_text(tok, te, [""])[0]
    cond_idx = torch.tensor([where[c] for c in caps])
    prep = time.perf_counter() - t_start
    if log:
        log(
            f"data: {n_scenes} scenes, {len(uniq)} captions, latents {tuple(latents.shape)} std {latents.std():.3f}, prep {prep:.0f}s"
        )
    unet = build_unet(te.config.hidden_size, latents.shape[-1], quick=quick)
    figs = fit_epsilon(
        unet,
        latents,
        cond_idx,
        embeds,
        null,
        steps=steps,
        batch=batch,
        lr=5e-4,
        seed=seed,
        log=log,
        log_every=1 if quick else 200,
    )
    figs.update(
        n_scenes=n_scenes,
        n_captions=len(uniq),
        latent_std=float(latents.std()),
        prep_seconds=round(prep, 1),
        params=sum(p.numel() for p in unet.parameters()),
        components=os.path.relpath(comp, REPO) if comp.resolve().is_relative_to(REPO) else str(comp),
        quick=quick,
        seed=seed,
    )
    figs["train_seconds"] = round(time.perf_counter() - t_start, 1)
    save_pipeline(out_dir, unet, comp, "StableDiffusionPipeline", extra=figs)
    return figs


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m engines.common.zoo.t2i")
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("train")
    a.add_argument("--quick", action="store_true")
    a.add_argument("--out", default=str(DEFAULT_OUT))
    a.add_argument("--steps", type=int)
    a.add_argument("--scenes", type=int)
    b = sub.add_parser("check")
    b.add_argument("model_dir", nargs="?", default=str(DEFAULT_OUT))
    b.add_argument("--n", type=int, default=48)
    b.add_argument("--steps", type=int, default=30)
    b.add_argument("--guidance", type=float, default=5.0)
    args = ap.parse_args(argv)
    if args.cmd == "train":
        print(json.dumps(train(args.out, quick=args.quick, steps=args.steps, n_scenes=args.scenes), indent=2))
    else:
        print(json.dumps(check(args.model_dir, n_prompts=args.n, steps=args.steps, guidance=args.guidance), indent=2))


if __name__ == "__main__":
    main()
