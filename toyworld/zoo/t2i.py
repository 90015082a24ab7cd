"""Toy text-to-image model: a small SD-1.5-layout pipeline trained on the toy world.

A small :class:`diffusers.UNet2DConditionModel` is trained (epsilon prediction, DDPM
objective, SD-1.5 noise schedule) on the frozen toy VAE's ``4x16x16`` latents of
single frames of static toy scenes (:mod:`toyworld.scene`), conditioned on the frozen toy
text encoder's hidden states of the scene caption (10% empty captions for
classifier-free guidance).  The result is saved as an SD-1.5-layout pipeline folder::

    models/toy/t2i/model_index.json    StableDiffusionPipeline (no safety checker)
    models/toy/t2i/unet/               the trained UNet2DConditionModel
    models/toy/t2i/scheduler/          DDIMScheduler config (scaled_linear 0.00085-0.012, 1000 steps)
    models/toy/t2i/{vae,text_encoder,tokenizer} -> ../vae, ../text_encoder, ../tokenizer (relative symlinks)

The training loop (:func:`fit_denoiser`, set up by a :class:`Fit` and a :class:`Run`), the
pipeline folder and the command line are shared with the T2V (:mod:`toyworld.zoo.t2v`).

API
---
* :func:`train(out_dir, quick=False, seed=0, ...)` -> dict of figures.
* :func:`check(model_dir, n_prompts=48, steps=30, guidance=5.0)` -> dict of quality figures
  (fraction of held-out single-object prompts whose sample shows the prompt's colour and shape).
* :func:`load_pipeline`, :func:`sample`, :func:`heldout_prompts`, :func:`judge_image`.

``components`` is the folder holding ``vae/``, ``text_encoder/``, ``tokenizer/``; by default
``models/toy`` when those exist, else ``models/tiny-random/sd`` (a random stand-in, for
smoke tests only).

CLI: ``python -m toyworld.zoo.t2i train [--quick] [--out DIR] [--save-every N] [--resume CHECKPOINT]``
/ ``check [DIR]``.

Heavy libraries (diffusers, transformers) are imported inside the functions that use them, so
that importing this module costs only torch.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from engines.common.finetune import prediction_target
from recut.models import REPO_ROOT
from toyworld import scene as toy
from toyworld.judge import judge_object
from toyworld.tinymodels import SD15_SCHEDULE
from toyworld.zoo._cli import threads_arg
from toyworld.zoo._util import EMA, load_tree, save_float16, save_tree, set_threads

REPO = REPO_ROOT
TOY_ROOT = REPO / "models" / "toy"
TINY_ROOT = REPO / "models" / "tiny-random" / "sd"
DEFAULT_OUT = TOY_ROOT / "t2i"
COMPONENTS = ("vae", "text_encoder", "tokenizer")
INFO_FILE = "zoo_info.json"  # the name every zoo trainer writes its figures to
#: Quality bar: fraction of held-out prompts whose sample shows the prompt's colour and shape.
BAR_COLOUR_SHAPE = 0.8

#: SD-1.5 noise schedule.
SCHEDULE = SD15_SCHEDULE

#: UNet channels per resolution level (top first); the T2V mirrors them (toyworld/zoo/t2v.py).
T2I_CHANNELS = (64, 64)
#: Per resolution level (top first): True for a cross-attention block (self- and cross-attention
#: after each ResNet), False for a plain ResNet block.  None at 16x16, where self-attention over
#: 256 positions would cost most of a step.
T2I_ATTENTION = (False, True)
T2I_HEADS = 4
LR = 5e-4
#: Linear LR warm-up steps; the LR is constant after them (so checkpoint k of a run equals a
#: k-step run) unless a :attr:`Fit.cooldown` lowers it at the end.
WARMUP = 100
EMA_DECAY = 0.995
TRAIN_STEPS = 6000
TRAIN_BATCH = 64
TRAIN_SCENES = 8000

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


def cached_latents(vae, key: str, make_frames, cache: str | os.PathLike[str] | None) -> torch.Tensor:
    """``encode_images(vae, make_frames())``, memoised in ``cache/<key>-<vae digest>.safetensors`` when
    ``cache`` is given (the digest covers the VAE's weights and config)."""
    if cache is None:
        return encode_images(vae, make_frames())
    h = hashlib.sha256(json.dumps(dict(vae.config), sort_keys=True, default=str).encode())
    for v in vae.state_dict().values():
        h.update(v.detach().cpu().numpy().tobytes())
    path = Path(cache) / f"{key}-{h.hexdigest()[:16]}.safetensors"
    if path.exists():
        return load_file(str(path))["latents"]
    lat = encode_images(vae, make_frames())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({"latents": lat.contiguous()}, str(tmp))
    os.replace(tmp, path)  # atomic: a concurrent trainer reads a whole file or none
    return lat


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


def training_images(
    vae, seed: int, count: int, cache: str | os.PathLike[str] | None = None
) -> tuple[torch.Tensor, list[str]]:
    """The T2I recipe's still images: VAE latents ``[N,C,h,w]`` (memoised in ``cache``) and captions."""
    scenes = t2i_scenes(seed, count)
    latents = cached_latents(vae, f"t2i-{seed}-{count}", lambda: render_frames(scenes)[:, 0], cache)
    return latents, [toy.caption(s) for s in scenes]


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
    down, up = block_types("2D", (True, False) if quick else T2I_ATTENTION)
    return UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=4,
        out_channels=4,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=ch,
        layers_per_block=1,
        attention_head_dim=4 if quick else T2I_HEADS,
        norm_num_groups=8,
        cross_attention_dim=cross_dim,
    )


def block_types(kind: str, attention: Sequence[bool]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Diffusers down / up block type names (``kind`` ``"2D"`` or ``"3D"``) for a per-level attention
    pattern (top level first); the up path mirrors the down path."""
    down = tuple(("CrossAttnDownBlock" if a else "DownBlock") + kind for a in attention)
    up = tuple(("CrossAttnUpBlock" if a else "UpBlock") + kind for a in reversed(attention))
    return down, up


def ddpm_scheduler(schedule: dict[str, Any] | None = None):
    """The training scheduler of ``schedule`` (default :data:`SCHEDULE`, SD-1.5)."""
    from diffusers import DDPMScheduler

    skip = ("set_alpha_to_one", "steps_offset")
    return DDPMScheduler(**{k: v for k, v in (schedule or SCHEDULE).items() if k not in skip})


def ddim_scheduler(schedule: dict[str, Any] | None = None):
    """The sampling scheduler a pipeline folder ships for ``schedule`` (default :data:`SCHEDULE`)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(**(schedule or SCHEDULE))


# --------------------------------------------------------------------------- fitting


def sample_errors(resid: torch.Tensor, alpha_bar: torch.Tensor, temporal_weight: float = 0.0) -> torch.Tensor:
    """Per-sample training error of a residual ``pred - target`` (``[B,C,H,W]`` or ``[B,C,F,H,W]``):
    its mean square, plus ``temporal_weight * (1 - alpha_bar)`` times the mean square of its
    frame-to-frame differences (clips only).

    For v prediction the second term is the squared error of the predicted clip's frame
    differences.  It is a positive quadratic form per sample, so the optimum is unchanged, but
    what is static in a clip (the background) gets no extra weight, what moves gets all of it,
    and the weight is largest at high noise, where the sampler lays out the motion."""
    err = resid.pow(2).flatten(1).mean(1)
    if temporal_weight:
        err = err + temporal_weight * (1 - alpha_bar) * resid.diff(dim=2).pow(2).flatten(1).mean(1)
    return err


def lr_factor(step: int, steps: int, cooldown: int = 0) -> float:
    """The LR of ``step`` (0-based) of a ``steps``-step run as a fraction of the peak: a linear
    warm-up over :data:`WARMUP` steps, then constant, falling linearly to 0 over the last
    ``cooldown`` steps."""
    f = min(1.0, (step + 1) / WARMUP)
    return f * min(1.0, (steps - step) / cooldown) if cooldown else f


@dataclass(frozen=True)
class Fit:
    """How :func:`fit_denoiser` trains: one recipe's objective and optimisation."""

    steps: int
    batch: int
    lr: float = LR
    ema_decay: float = EMA_DECAY
    #: share of conditions replaced by the empty caption's (for classifier-free guidance)
    cfg_drop: float = 0.1
    #: LR cooldown steps at the end of the run (:func:`lr_factor`)
    cooldown: int = 0
    #: weight of the residual's frame-to-frame differences (clips only, :func:`sample_errors`)
    temporal_weight: float = 0.0
    #: the diffusers scheduler config (noise schedule and prediction type); None: :data:`SCHEDULE`
    noise_schedule: dict[str, Any] | None = field(default=None, hash=False)
    log_every: int = 100

    def __post_init__(self) -> None:
        if not 0 <= self.cooldown <= self.steps:
            raise ValueError(f"cooldown must be between 0 and the run's steps ({self.steps}), got {self.cooldown}")

    def figures(self) -> dict[str, Any]:
        """The settings ``zoo_info.json`` records."""
        sched = ddpm_scheduler(self.noise_schedule).config
        return {
            "batch": self.batch,
            "lr": self.lr,
            "ema_decay": self.ema_decay,
            "prediction_type": sched.prediction_type,
            "zero_terminal_snr": bool(sched.rescale_betas_zero_snr),
            **({"cooldown": self.cooldown} if self.cooldown else {}),
            **({"temporal_weight": self.temporal_weight} if self.temporal_weight else {}),
        }


def fit_denoiser(
    unet,
    latents: torch.Tensor,
    cond_idx: torch.Tensor,
    embeds: torch.Tensor,
    null_embed: torch.Tensor,
    fit: Fit,
    *,
    seed: int,
    resume: dict[str, Any] | None = None,
    save_every: int = 0,
    on_checkpoint: Callable[[int, Any, dict[str, Any]], None] | None = None,
    log=print,
) -> dict[str, Any]:
    """DDPM training as ``fit`` says (epsilon or v prediction, as its noise schedule says) on
    precomputed latents ``[N,C,H,W]`` or clips ``[N,C,F,H,W]`` whose condition is
    ``embeds[cond_idx[n]]``; a ``fit.cfg_drop`` share of conditions is replaced by ``null_embed``.
    The weights end as the EMA.  Seeded and step-determined (bit-identical reruns on one thread).

    ``on_checkpoint(step, ema_unet, state)`` is called every ``save_every`` steps (the UNet passed
    holds the EMA weights only for the call) with the full training state (live weights,
    optimiser, EMA, generators); ``resume`` takes such a state and continues the run exactly as
    if it had not stopped."""
    if fit.temporal_weight and latents.dim() != 5:
        raise ValueError(f"temporal_weight needs clips [N,C,F,H,W], got latents of shape {tuple(latents.shape)}")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    sched = ddpm_scheduler(fit.noise_schedule)
    acp = sched.alphas_cumprod.float()
    opt = torch.optim.AdamW(unet.parameters(), lr=fit.lr, weight_decay=0.01)
    ema = EMA(unet, fit.ema_decay)
    unet.train()
    n, steps = latents.shape[0], fit.steps
    losses: list[float] = []
    done = 0
    if resume is not None:
        unet.load_state_dict(resume["model"])
        opt.load_state_dict(resume["opt"])
        with torch.no_grad():
            for mine, saved in zip(ema.shadow, resume["ema"], strict=True):
                mine.copy_(saved)
        g.set_state(resume["gen"])
        torch.set_rng_state(resume["torch_rng"])
        done, losses = resume["step"], list(resume["losses"])
    start, t0 = done, time.perf_counter()
    for step in range(done, steps):
        lr = fit.lr * lr_factor(step, steps, fit.cooldown)
        for pg in opt.param_groups:
            pg["lr"] = lr
        idx = torch.randint(0, n, (fit.batch,), generator=g)
        x0, c = latents[idx], embeds[cond_idx[idx]]
        drop = torch.rand(fit.batch, generator=g) < fit.cfg_drop
        if drop.any():
            c = torch.where(drop[:, None, None], null_embed[None].expand_as(c), c)
        t = torch.randint(0, sched.config.num_train_timesteps, (fit.batch,), generator=g)
        noise = torch.randn(x0.shape, generator=g)
        a = acp[t].view(-1, *([1] * (x0.dim() - 1)))
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        pred = unet(xt, t, encoder_hidden_states=c).sample
        loss = sample_errors(pred - prediction_target(sched, x0, noise, t), acp[t], fit.temporal_weight).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        ema.update(unet, step)
        losses.append(loss.item())
        done = step + 1
        if save_every and on_checkpoint is not None and done % save_every == 0 and done < steps:
            state = {
                "step": done,
                "model": {k: v.detach().clone() for k, v in unet.state_dict().items()},
                "opt": opt.state_dict(),
                "ema": [v.clone() for v in ema.shadow],
                "gen": g.get_state(),
                "torch_rng": torch.get_rng_state(),
                "losses": losses[-fit.log_every :],
            }
            live = [p.detach().clone() for p in unet.parameters()]
            ema.copy_to(unet)
            on_checkpoint(done, unet, state)
            with torch.no_grad():
                for p, v in zip(unet.parameters(), live, strict=True):
                    p.copy_(v)
            unet.train()
        if log and (step % fit.log_every == 0 or step == steps - 1):
            el = time.perf_counter() - t0
            log(
                f"step {step}/{steps} loss {np.mean(losses[-fit.log_every :]):.4f} lr {lr:.1e} "
                f"{el:.0f}s ({(step + 1 - start) / el:.2f} it/s)"
            )
    ema.copy_to(unet)
    unet.eval()
    return {
        "train_steps": done,
        "planned_steps": steps,
        **fit.figures(),
        "final_loss": float(np.mean(losses[-min(100, len(losses)) :])) if losses else float("nan"),
        "fit_seconds": round(time.perf_counter() - t0, 1),
    }


def encode_captions(
    tok, comp: Path | Components, captions: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The frozen text encoder ``comp/text_encoder``'s hidden states of each distinct caption
    (``embeds``), each caption's index into them (``cond_idx``) and the empty caption's states."""
    uniq = sorted(set(captions))
    where = {c: i for i, c in enumerate(uniq)}
    te = load_text_encoder(comp)
    return torch.tensor([where[c] for c in captions]), encode_text(tok, te, uniq), encode_text(tok, te, [""])[0]


@dataclass
class Run:
    """One training run of the T2I or T2V recipe: where it saves, its seed, its checkpoints.

    ``save_every``: save the EMA pipeline every N steps to ``out_dir/checkpoints/step-<k>/`` (each
    a loadable pipeline folder, checkable with ``check``, plus ``train_state.json`` / ``.safetensors``);
    ``resume``: such a checkpoint folder, to continue that run (same arguments) from its step."""

    out_dir: Path
    seed: int = 0
    quick: bool = False
    save_every: int = 0
    resume: Path | None = None
    log: Callable[[str], None] | None = print
    started: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        if self.save_every < 0:
            raise ValueError(f"save_every must be >= 0, got {self.save_every}")
        if self.resume is not None:
            self.resume = Path(self.resume)
            if not (self.resume / "train_state.json").is_file():
                raise FileNotFoundError(f"checkpoint {str(self.resume)!r} has no train_state.json")


def fit_and_save(
    unet,
    latents: torch.Tensor,
    captions: Sequence[str],
    tok,
    comp: Path | Components,
    pipeline_class: str,
    fit: Fit,
    run: Run,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """:func:`fit_denoiser` on ``captions`` (:func:`encode_captions`), then the figures (``extra``
    added) and the pipeline folder ``run.out_dir``, with the checkpoints ``run`` asks for."""
    cond_idx, embeds, null = encode_captions(tok, comp, captions)

    def save_checkpoint(step: int, ema_unet, state: dict[str, Any]) -> None:
        folder = run.out_dir / "checkpoints" / f"step-{step}"
        save_pipeline(folder, ema_unet, comp, pipeline_class, {"steps": step}, fit.noise_schedule)
        save_tree(folder, "train_state", state)

    resume = load_tree(run.resume, "train_state") if run.resume is not None else None
    figs: dict[str, Any] = {"n_captions": len(embeds)}
    figs.update(
        fit_denoiser(
            unet,
            latents,
            cond_idx,
            embeds,
            null,
            fit,
            seed=run.seed,
            resume=resume,
            save_every=run.save_every,
            on_checkpoint=save_checkpoint,
            log=run.log,
        )
    )
    figs.update(
        **extra,
        latent_std=float(latents.std()),
        params=sum(p.numel() for p in unet.parameters()),
        size_bytes=sum(p.numel() * 2 for p in unet.parameters()),  # float16 on disk
        components=comp.describe() if isinstance(comp, Components) else repo_rel(comp),
        quick=run.quick,
        seed=run.seed,
        threads=torch.get_num_threads(),
    )
    figs["train_seconds"] = round(time.perf_counter() - run.started, 1)
    save_pipeline(run.out_dir, unet, comp, pipeline_class, extra=figs, noise_schedule=fit.noise_schedule)
    return figs


# --------------------------------------------------------------------------- saving / loading


class Components:
    """Where a pipeline's ``vae/``, ``text_encoder/`` and ``tokenizer/`` come from: ``root/<name>``,
    unless ``overrides`` gives that component another folder (the T2V's own text encoder).
    ``components / name`` is the folder, as for a plain ``Path`` root."""

    def __init__(self, root: str | os.PathLike[str], **overrides: str | os.PathLike[str] | None) -> None:
        unknown = set(overrides) - set(COMPONENTS)
        if unknown:
            raise ValueError(f"unknown pipeline component(s) {sorted(unknown)}; known: {', '.join(COMPONENTS)}")
        self.root = Path(root)
        self.overrides = {k: Path(v) for k, v in overrides.items() if v is not None}
        for name, folder in self.overrides.items():
            if not (folder / "config.json").is_file():
                raise FileNotFoundError(
                    f"{name} folder {str(folder)!r} has no config.json (not a from_pretrained folder)"
                )

    def __truediv__(self, name: str) -> Path:
        return self.overrides.get(name, self.root / name)

    def describe(self) -> str | dict[str, str]:
        """The root (repo-relative where possible), with the overridden components."""
        rel = repo_rel(self.root)
        return {"root": rel, **{k: repo_rel(v) for k, v in self.overrides.items()}} if self.overrides else rel


def repo_rel(p: Path) -> str:
    """``p`` relative to the repository when inside it, else as given."""
    return os.path.relpath(p, REPO) if p.resolve().is_relative_to(REPO) else str(p)


def link_components(out_dir: Path, components: Path | Components) -> None:
    """Relative symlinks ``out_dir/{vae,text_encoder,tokenizer}`` -> ``components / name``.  A component
    that already is a real folder of ``out_dir`` and the target itself is left alone."""
    for c in COMPONENTS:
        link = out_dir / c
        target_dir = (components / c).resolve()
        if not link.is_symlink() and link.is_dir() and link.resolve() == target_dir:
            continue
        if link.is_symlink() or link.exists():
            if link.is_symlink() or link.is_file():
                link.unlink()
            else:
                shutil.rmtree(link)
        target = os.path.relpath(target_dir, out_dir.resolve())
        link.symlink_to(target, target_is_directory=True)


def save_pipeline(
    out_dir: str | os.PathLike[str],
    unet,
    components: Path | Components,
    pipeline_class: str,
    extra: dict | None = None,
    noise_schedule: dict[str, Any] | None = None,
) -> Path:
    """Write ``unet/`` (float16 on disk), ``scheduler/`` (DDIM with ``noise_schedule``, default SD-1.5),
    ``model_index.json`` and the component symlinks."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_float16(unet, out / "unet")
    ddim_scheduler(noise_schedule).save_pretrained(out / "scheduler")
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
        (out / INFO_FILE).write_text(json.dumps(extra, indent=2, sort_keys=True) + "\n")
    return out


def record_check(model_dir: str | os.PathLike[str], figures: dict[str, Any]) -> None:
    """Merge ``figures`` into ``model_dir/zoo_info.json`` under ``"check"``."""
    p = Path(model_dir) / INFO_FILE
    info = json.loads(p.read_text()) if p.exists() else {}
    info["check"] = figures
    p.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")


def load_pipeline(model_dir: str | os.PathLike[str] = DEFAULT_OUT, pipeline_class: str = "StableDiffusionPipeline"):
    """A toy pipeline folder, offline, quiet (``pipeline_class``: a diffusers pipeline name)."""
    import diffusers
    from diffusers.utils import logging as dlog

    dlog.set_verbosity_error()
    extra = {"safety_checker": None} if pipeline_class == "StableDiffusionPipeline" else {}
    pipe = getattr(diffusers, pipeline_class).from_pretrained(str(model_dir), local_files_only=True, **extra)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@torch.no_grad()
def sample(
    pipe, prompts: Sequence[str], steps: int = 30, guidance: float = 5.0, seed: int = 0, batch: int = 48, **call_kw
) -> np.ndarray:
    """uint8 samples, one per prompt (a seeded generator per batch): ``[N,64,64,3]`` images from an
    image pipeline, ``[N,T,64,64,3]`` clips from a video pipeline (``call_kw``, e.g. ``num_frames``,
    go to the pipeline call)."""
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
            **call_kw,
        )
        v = np.asarray(r.frames if hasattr(r, "frames") else r.images)
        outs.append(np.clip(np.rint(v * 255), 0, 255).astype(np.uint8))
    return np.concatenate(outs)


# --------------------------------------------------------------------------- judging


def judge_image(img: np.ndarray, prompt: str) -> dict[str, Any]:
    """Colour / shape of the (first) object named in ``prompt`` in a uint8 ``[H,W,3]`` image,
    judged by part A's :func:`toyworld.judge.judge_object` (largest component of the
    colour's palette mask, >= 20 pixels; :func:`toyworld.scene.classify_shape` of it)."""
    want = toy.parse_caption(prompt)[0]
    r = judge_object(img, want["colour"], want["shape"])
    return {"colour_ok": bool(r["colour"]), "shape_ok": bool(r["shape"]), "shape": r["shape_pred"]}


def readings(judged: Sequence[dict[str, Any]], prompts: Sequence[str], attribute: str) -> dict[str, dict[str, int]]:
    """For each asked value of ``attribute`` (``"shape"`` or ``"motion"``) of a prompt's first object,
    how often the judge read each value (``judged[i][attribute]``), e.g. ``{"circle": {"circle": 9,
    "unknown": 3}}``; asked values in first-seen order."""
    out: dict[str, Counter] = {}
    for r, p in zip(judged, prompts, strict=True):
        out.setdefault(toy.parse_caption(p)[0][attribute], Counter())[r[attribute]] += 1
    return {k: dict(v) for k, v in out.items()}


def check(
    model_dir: str | os.PathLike[str] = DEFAULT_OUT,
    n_prompts: int = 48,
    steps: int = 30,
    guidance: float = 5.0,
    seed: int = 0,
    record: bool = False,
) -> dict[str, Any]:
    """Sample one image per held-out prompt and judge colour and shape (``record``: also
    store the figures in ``zoo_info.json``)."""
    set_threads()
    prompts = heldout_prompts(n_prompts)
    res, figs = judged_samples(load_pipeline(model_dir), prompts, sample, judge_image, steps, guidance, seed)
    figs["shape_predicted"] = readings(res, prompts, "shape")
    figs["passed"] = figs["colour_shape_acc"] >= BAR_COLOUR_SHAPE
    if record:
        record_check(model_dir, figs)
    return figs


def judged_samples(
    pipe, prompts: Sequence[str], sample_fn, judge_fn, steps: int, guidance: float, seed: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One sample per prompt (``sample_fn``), each judged (``judge_fn(sample, prompt)`` -> dict with
    ``colour_ok``/``shape_ok``); returns the judgements and the shared check figures."""
    t0 = time.perf_counter()
    out = sample_fn(pipe, prompts, steps=steps, guidance=guidance, seed=seed)
    res = [judge_fn(x, p) for x, p in zip(out, prompts, strict=True)]
    figs = {
        "n_prompts": len(prompts),
        "steps": steps,
        "guidance": guidance,
        "sampler": "DDIM",
        "colour_acc": float(np.mean([r["colour_ok"] for r in res])),
        "colour_shape_acc": float(np.mean([r["shape_ok"] for r in res])),
        "sample_seconds": round(time.perf_counter() - t0, 1),
    }
    return res, figs


# --------------------------------------------------------------------------- training


def setup_training(
    components: str | os.PathLike[str] | None,
    seed: int,
    text_encoder: str | os.PathLike[str] | None = None,
    threads: int = 1,
):
    """One thread (or ``threads``), seeded torch, the :class:`Components` (``components`` root,
    default :func:`default_components`; ``text_encoder`` another text encoder folder) and their
    frozen tokenizer and VAE."""
    set_threads(threads)
    torch.manual_seed(seed)
    comp = Components(components if components is not None else default_components(), text_encoder=text_encoder)
    from diffusers import AutoencoderKL
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(comp / "tokenizer")
    vae = AutoencoderKL.from_pretrained(comp / "vae").eval().requires_grad_(False)
    return comp, tok, vae


def text_hidden_size(comp: Path | Components) -> int:
    te_cfg = comp / "text_encoder" / "config.json"
    return json.loads(te_cfg.read_text())["hidden_size"] if te_cfg.exists() else 64


def load_text_encoder(comp: Path | Components):
    """``comp/text_encoder``, frozen, eval mode."""
    from transformers import CLIPTextModel

    return CLIPTextModel.from_pretrained(comp / "text_encoder").eval().requires_grad_(False)


def train(
    out_dir: str | os.PathLike[str] = DEFAULT_OUT,
    quick: bool = False,
    seed: int = 0,
    *,
    components: str | os.PathLike[str] | None = None,
    steps: int | None = None,
    cache: str | os.PathLike[str] | None = None,
    save_every: int = 0,
    resume: str | os.PathLike[str] | None = None,
    threads: int = 1,
    log=print,
) -> dict[str, Any]:
    """Train the toy T2I UNet on the frozen toy text encoder's captions and save the pipeline
    folder; returns figures.  ``steps``: run length (default the recipe's); ``cache``: optional
    folder memoising the VAE latents; ``save_every`` / ``resume``: checkpoints (:class:`Run`);
    ``threads``: torch intra-op threads (1 suits a shared machine)."""
    run = Run(out_dir, seed, quick, save_every, resume, log)
    comp, tok, vae = setup_training(components, seed, threads=threads)
    n_scenes = 16 if quick else TRAIN_SCENES
    fit = Fit(
        steps=steps if steps is not None else (3 if quick else TRAIN_STEPS),
        batch=8 if quick else TRAIN_BATCH,
        log_every=1 if quick else 50,
    )
    latents, caps = training_images(vae, TRAIN_SEED + seed, n_scenes, cache)
    prep = time.perf_counter() - run.started
    if log:
        log(f"data: {n_scenes} scenes, latents {tuple(latents.shape)} std {latents.std():.3f}, prep {prep:.0f}s")
    unet = build_unet(text_hidden_size(comp), latents.shape[-1], quick=quick)
    extra = {"n_scenes": n_scenes, "prep_seconds": round(prep, 1)}
    return fit_and_save(unet, latents, caps, tok, comp, "StableDiffusionPipeline", fit, run, extra)


# --------------------------------------------------------------------------- command line


def add_check_parser(sub, default_out: Path, add_extra=None) -> None:
    """The `check` sub-command, shared by the T2I and T2V command lines (``add_extra(parser)`` adds a
    model's own check options; their names match its ``check`` keywords)."""
    b = sub.add_parser("check")
    b.add_argument("model_dir", nargs="?", default=str(default_out))
    b.add_argument("--n", type=int, default=48, dest="n_prompts")
    b.add_argument("--steps", type=int, default=30)
    b.add_argument("--guidance", type=float, default=5.0)
    b.add_argument("--record", action="store_true", help="store the figures in zoo_info.json")
    if add_extra is not None:
        add_extra(b)


def run_cli(argv, prog: str, default_out: Path, train_fn, check_fn, add_extra=None, add_check_extra=None) -> None:
    """The ``train`` / ``check`` command line shared by the T2I and T2V trainers; ``add_extra(parser)``
    adds a trainer's own ``train`` options (their names match its ``train`` keywords),
    ``add_check_extra(parser)`` its own ``check`` options."""
    ap = argparse.ArgumentParser(prog=prog)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("train")
    a.add_argument("--quick", action="store_true")
    a.add_argument("--out", default=str(default_out))
    a.add_argument("--steps", type=int, help="run length (default: the recipe's)")
    a.add_argument("--cache", help="folder memoising the training latents")
    a.add_argument("--components", help="folder with vae/, text_encoder/, tokenizer/ (default models/toy)")
    a.add_argument(
        "--threads", type=threads_arg, default=1, help="torch threads (default 1; more pay off only on an idle machine)"
    )
    a.add_argument("--save-every", type=int, default=0, help="save the EMA pipeline every N steps (checkpoints/)")
    a.add_argument("--resume", help="a checkpoint folder: continue that run (same arguments) from its step")
    if add_extra is not None:
        add_extra(a)
    add_check_parser(sub, default_out, add_check_extra)
    args = ap.parse_args(argv)
    kw = vars(args)
    cmd = kw.pop("cmd")
    try:
        if cmd == "train":
            print(json.dumps(train_fn(kw.pop("out"), **kw), indent=2, default=str))
        else:
            print(json.dumps(check_fn(kw.pop("model_dir"), **kw), indent=2))
    except (OSError, ValueError) as exc:  # a missing or malformed folder given on the command line
        ap.exit(2, f"{prog}: error: {exc}\n")


def main(argv: Sequence[str] | None = None) -> None:
    run_cli(argv, "python -m toyworld.zoo.t2i", DEFAULT_OUT, train, check)


if __name__ == "__main__":
    main()
