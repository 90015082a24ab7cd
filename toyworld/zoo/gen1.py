"""The toy Gen-1 model: the committed toy T2V, widened to take structure, trained in the paper's stages.

Start: ``models/toy/t2v``'s ``UNet3DConditionModel`` with ``conv_in`` widened by 8 zero channels (the
depth latent at level t_s and 4 channels of the t_s embedding), so step 0 is exactly the T2V. Data:
toy clips, their depth from the toy DPT (as the engine extracts it), the structure latents of every
level 0..7, and the toy CLIP's image embedding of each frame.

Each step draws a batch of clips and:
* the structure level: 0 in stage 1, uniform in 0..7 in stage 2;
* the content: the caption through the T2V's text encoder, or (``image_content``) the CLIP image
  embedding of one of the clip's frames through the content projection, or (``uncond``) the empty
  prompt, for classifier-free guidance;
* with probability ``image_batches`` the step runs as an image model (temporal layers off), the
  paper's joint image/video training, which ω_t needs.

The prior (text embedding -> image embedding, :class:`EmbeddingPrior`) is fit on the toy CLIP's
embeddings of the same clips before the UNet. Checkpoints (safetensors + JSON) every
``checkpoint_every`` steps; ``resume`` continues from the last one.

Quality bar (held-out scenes, t_s = 0, a recolour prompt): the object keeps its silhouette (mask IoU
against the input >= 0.7) in >= 80 % of scenes and takes the prompt's colour in >= 80 %.

CLI::

    python -m toyworld.zoo.gen1 train [--out DIR] [--quick] [--threads N] [--resume]
    python -m toyworld.zoo.gen1 check [--out DIR] [--scenes N]
    python -m toyworld.zoo.gen1 export WORK --out DIR     # a model folder from the last checkpoint
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engines.common.content import ContentProjection, EmbeddingPrior, image_embeddings, text_embeddings
from engines.common.finetune import prediction_target
from engines.common.structure import (
    T_S_MAX,
    TS_CHANNELS,
    depth_maps,
    structure_channels,
    structure_level,
    widen_conv_in,
)
from engines.common.temporal import frames_mode
from toyworld import judge
from toyworld import scene as toy
from toyworld.zoo import t2i, t2v
from toyworld.zoo._util import (
    load_checkpoint,
    log,
    save_checkpoint,
    save_float16,
    set_threads,
    write_info,
    write_model_folder,
)

TOY = t2i.TOY_ROOT
DEFAULT_OUT = TOY / "gen1"
T2V_DIR = TOY / "t2v"
TRAIN_SEED = 1300
HELDOUT_SEED = 9300
BAR_IOU = 0.7
BAR_RATE = 0.8
#: Colours a recolour check asks for, per the object's own colour (any palette colour but its own).
RECOLOUR = {c: [x for x in toy.COLOURS if x != c] for c in toy.COLOURS}


@dataclass(frozen=True)
class Gen1Recipe:
    clips: int = 1200
    batch: int = 8
    stage1_steps: int = 800
    stage2_steps: int = 1600
    lr: float = 1e-4
    projection_lr: float = 1e-3
    image_content: float = 0.25
    uncond: float = 0.1
    image_batches: float = 0.2
    tokens: int = 4
    prior_steps: int = 3000
    checkpoint_every: int = 200
    seed: int = 0

    @property
    def steps(self) -> int:
        return self.stage1_steps + self.stage2_steps


QUICK = Gen1Recipe(clips=8, batch=2, stage1_steps=2, stage2_steps=2, prior_steps=20, checkpoint_every=2)


# --------------------------------------------------------------------------- data


@dataclass
class Gen1Data:
    captions: list[str]
    latents: torch.Tensor  # [N, C, T, h, w]
    structure: torch.Tensor  # [N, L, C + 4, T, h, w], one per level, float16
    image_emb: torch.Tensor  # [N, T, E]
    text_emb: torch.Tensor  # [N, E]


def _clip_model() -> tuple[Any, Any]:
    from transformers import CLIPModel, CLIPProcessor

    return CLIPModel.from_pretrained(TOY / "clip").eval(), CLIPProcessor.from_pretrained(TOY / "clip")


def build_data(recipe: Gen1Recipe, cache: Path | None) -> Gen1Data:
    """Render the clips and compute (or load from ``cache``) everything a step needs."""
    from safetensors.torch import load_file, save_file
    from transformers import DPTForDepthEstimation, DPTImageProcessor

    scenes = t2v.t2v_scenes(TRAIN_SEED, recipe.clips)
    captions = [toy.caption(s) for s in scenes]
    key = f"gen1-{TRAIN_SEED}-{recipe.clips}"
    path = cache / f"{key}.safetensors" if cache else None
    if path is not None and path.exists():
        d = load_file(str(path))
        return Gen1Data(captions, d["latents"], d["structure"], d["image_emb"], d["text_emb"])
    _, _, vae = t2i.load_components(T2V_DIR)
    depth = DPTForDepthEstimation.from_pretrained(TOY / "depth").eval()
    proc = DPTImageProcessor.from_pretrained(TOY / "depth")
    clip, clip_proc = _clip_model()
    lat, struct, img_emb = [], [], []

    def encode(x: torch.Tensor) -> torch.Tensor:
        return vae.encode(x).latent_dist.mean * vae.config.scaling_factor

    with torch.no_grad():
        for i, s in enumerate(scenes):
            frames = toy.render(s).frames
            lat.append(t2i.encode_images(vae, frames).permute(1, 0, 2, 3))
            maps = depth_maps(frames, depth, proc)
            levels = [torch.from_numpy(structure_level(maps, k))[None] for k in range(T_S_MAX + 1)]
            struct.append(
                torch.cat([structure_channels(encode, lv, k) for k, lv in enumerate(levels)]).to(torch.float16)
            )
            img_emb.append(image_embeddings(clip, clip_proc, frames))
            if i % 100 == 0:
                log(f"gen1 data {i}/{len(scenes)}")
        text_emb = torch.cat(
            [text_embeddings(clip, clip_proc, captions[i : i + 256]) for i in range(0, len(captions), 256)]
        )
    data = Gen1Data(captions, torch.stack(lat), torch.stack(struct), torch.stack(img_emb), text_emb)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {"latents": data.latents, "structure": data.structure, "image_emb": data.image_emb}
        save_file({**tensors, "text_emb": data.text_emb}, str(path))
    return data


# --------------------------------------------------------------------------- the prior


def fit_prior(data: Gen1Data, steps: int, seed: int) -> tuple[EmbeddingPrior, dict[str, float]]:
    """The text -> image embedding prior, fit on (caption, mean frame embedding) pairs (cosine loss)."""
    torch.manual_seed(seed)
    e = data.text_emb.shape[1]
    prior = EmbeddingPrior(embed_dim=e, hidden=4 * e, layers=2)
    target = torch.nn.functional.normalize(data.image_emb.mean(1), dim=-1)
    n = len(target)
    held = max(1, n // 10)
    opt = torch.optim.AdamW(prior.parameters(), lr=1e-3, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(held, n, (min(256, n - held),), generator=gen)
        loss = 1 - (prior(data.text_emb[idx]) * target[idx]).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        cos_prior = float((prior(data.text_emb[:held]) * target[:held]).sum(-1).mean())
        cos_text = float((data.text_emb[:held] * target[:held]).sum(-1).mean())
    return prior.eval(), {"prior_cosine_heldout": round(cos_prior, 4), "text_cosine_heldout": round(cos_text, 4)}


# --------------------------------------------------------------------------- training


def load_start(tokens: int) -> tuple[Any, Any, Any, Any, Any, ContentProjection]:
    """(tokenizer, text encoder, vae, scheduler, widened UNet, content projection) from the toy T2V."""
    from diffusers import DDPMScheduler, UNet3DConditionModel

    tok, te, vae = t2i.load_components(T2V_DIR)
    sched = DDPMScheduler.from_pretrained(T2V_DIR / "scheduler")
    unet = UNet3DConditionModel.from_pretrained(T2V_DIR / "unet")
    widen_conv_in(unet, int(vae.config.latent_channels) + TS_CHANNELS)
    clip_dim = json.loads((TOY / "clip" / "config.json").read_text())["projection_dim"]
    proj = ContentProjection(clip_dim, int(unet.config.cross_attention_dim), tokens)
    return tok, te, vae, sched, unet, proj


def train(
    out: str | Path = DEFAULT_OUT,
    quick: bool = False,
    seed: int = 0,
    threads: int = 1,
    resume: bool = False,
    cache: str | Path | None = None,
    recipe: Gen1Recipe | None = None,
) -> dict[str, Any]:
    """Steps: 1. data; 2. the prior; 3. the widened UNet (stages 1 and 2); 4. save; 5. check."""
    set_threads(threads)
    r = replace(recipe or (QUICK if quick else Gen1Recipe()), seed=seed)
    out = Path(out)
    work = out.with_name(out.name + ".work")
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    # 1. data
    data = build_data(r, Path(cache) if cache else (None if quick else work / "cache"))
    # 2. the prior
    prior, prior_fig = fit_prior(data, r.prior_steps, r.seed)
    log(f"gen1 prior: {prior_fig}")
    # 3. the UNet
    tok, te, _, sched, unet, proj = load_start(r.tokens)
    with torch.no_grad():
        text_states = t2i.encode_text(tok, te, data.captions)
        empty = t2i.encode_text(tok, te, [""])
    opt = torch.optim.AdamW(
        [{"params": list(unet.parameters()), "lr": r.lr}, {"params": list(proj.parameters()), "lr": r.projection_lr}],
        weight_decay=1e-2,
    )
    start = load_checkpoint(work / "checkpoint", {"unet": unet, "projection": proj}, opt) if resume else 0
    if start:
        log(f"gen1: resumed at step {start}")
    unet.train()
    gen = torch.Generator().manual_seed(r.seed * 1000 + start)
    n = len(data.captions)
    losses: list[float] = []
    for step in range(start, r.steps):
        idx = torch.randint(0, n, (r.batch,), generator=gen)
        x0 = data.latents[idx]
        b = x0.shape[0]
        levels = (
            torch.zeros(b, dtype=torch.long)
            if step < r.stage1_steps
            else torch.randint(0, T_S_MAX + 1, (b,), generator=gen)
        )
        structure = data.structure[idx, levels].float()
        u = float(torch.rand((), generator=gen))
        if u < r.uncond:
            ctx = empty.expand(b, -1, -1)
        elif u < r.uncond + r.image_content:
            frame = torch.randint(0, data.image_emb.shape[1], (b,), generator=gen)
            ctx = proj(data.image_emb[idx, frame])
        else:
            ctx = text_states[idx]
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, sched.config.num_train_timesteps, (b,), generator=gen)
        zt = sched.add_noise(x0, noise, t)
        target = prediction_target(sched, x0, noise, t)
        as_images = float(torch.rand((), generator=gen)) < r.image_batches
        x = torch.cat([zt, structure], dim=1)
        if as_images:
            with frames_mode(unet):
                pred = unet(x, t, encoder_hidden_states=ctx).sample
        else:
            pred = unet(x, t, encoder_hidden_states=ctx).sample
        loss = torch.nn.functional.mse_loss(pred, target)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        if (step + 1) % 50 == 0:
            log(f"gen1 step {step + 1}/{r.steps} loss {np.mean(losses[-50:]):.4f} ({time.time() - t0:.0f} s)")
        if (step + 1) % r.checkpoint_every == 0 or step + 1 == r.steps:
            save_checkpoint(work / "checkpoint", step + 1, {"unet": unet, "projection": proj}, opt)
    unet.eval()
    # 4. save
    save_model(out, unet, proj, prior)
    info = {
        "recipe": "gen1",
        "settings": asdict(r),
        "quick": quick,
        "train_time_s": round(time.time() - t0, 1),
        "final_loss": round(float(np.mean(losses[-50:])), 5) if losses else None,
        "prior": prior_fig,
        "resumed_from": start,
    }
    # 5. check
    info["metrics"] = check(out, scenes=4 if quick else 20, steps=4 if quick else 25)
    write_info(out, info)
    return info


def save_model(out: Path, unet: Any, proj: ContentProjection, prior: EmbeddingPrior) -> None:
    """The model folder: UNet (float16 on disk), projection, prior, scheduler; links to the T2V's
    text encoder, tokenizer and VAE, and to the toy CLIP and depth (the engine's content and structure)."""
    from diffusers import DDIMScheduler

    def fill(tmp: Path) -> None:
        save_float16(unet, tmp / "unet")
        proj.save_pretrained(tmp / "content_projection")
        prior.save_pretrained(tmp / "prior")
        DDIMScheduler.from_pretrained(T2V_DIR / "scheduler").save_pretrained(tmp / "scheduler")

    links = {
        "text_encoder": "t2v_text_encoder",
        "tokenizer": "tokenizer",
        "vae": "vae",
        "clip": "clip",
        "depth": "depth",
    }
    index = {
        "_class_name": "Gen1",
        "unet": ["diffusers", "UNet3DConditionModel"],
        "content_projection": ["engines.common.content", "ContentProjection"],
        "prior": ["engines.common.content", "EmbeddingPrior"],
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "vae": ["diffusers", "AutoencoderKL"],
        "clip": ["transformers", "CLIPModel"],
        "depth": ["transformers", "DPTForDepthEstimation"],
    }
    write_model_folder(out, fill, {name: TOY / folder for name, folder in links.items()}, index)


def export_checkpoint(
    work: str | Path, out: str | Path, cache: str | Path | None = None, tokens: int = Gen1Recipe.tokens
) -> int:
    """Write a model folder from a training's last checkpoint (``<out>.work/checkpoint``), with the
    prior fit anew from the cached data; returns the checkpoint's step."""
    work = Path(work)
    _, _, _, _, unet, proj = load_start(tokens)
    opt = torch.optim.AdamW([{"params": list(unet.parameters())}, {"params": list(proj.parameters())}])
    step = load_checkpoint(work / "checkpoint", {"unet": unet, "projection": proj}, opt)
    cache = Path(cache) if cache else work / "cache"
    cached = sorted(cache.glob("gen1-*.safetensors"))
    r = Gen1Recipe(clips=int(cached[0].stem.split("-")[-1])) if cached else Gen1Recipe()
    prior, _ = fit_prior(build_data(r, cache), r.prior_steps, r.seed)
    save_model(Path(out), unet.eval(), proj.eval(), prior)
    return step


# --------------------------------------------------------------------------- check


def heldout_scenes(n: int) -> list[toy.ToyScene]:
    """Single-object clips the training never drew (another seed stream)."""
    return [s for s in t2v.t2v_scenes(HELDOUT_SEED, 3 * n, two_object_frac=0.0) if len(s.objects) == 1][:n]


def recolour_prompt(scene: toy.ToyScene, index: int) -> tuple[str, str]:
    """The scene's caption with its object recoloured (a colour that is not the background's)."""
    obj = scene.objects[0]
    choices = [c for c in RECOLOUR[obj.colour] if c != scene.background.colour]
    colour = choices[index % len(choices)]
    return toy.caption(scene).replace(f"{obj.colour} {obj.shape}", f"{colour} {obj.shape}", 1), colour


def silhouette_iou(frames: np.ndarray, colour: str, truth_masks: np.ndarray) -> float:
    """Mean over frames of the IoU between the ``colour`` object found in ``frames`` and the truth mask."""
    found, _ = judge.object_masks(frames, colour)
    inter = (found & truth_masks).reshape(len(found), -1).sum(1)
    union = (found | truth_masks).reshape(len(found), -1).sum(1)
    return float(np.mean(inter / np.maximum(union, 1)))


def load_gen1(folder: str | Path = DEFAULT_OUT) -> Any:
    """The gen1 engine on a model folder, loaded as a spec's ``model: {path: folder}`` loads it."""
    from engines.gen1 import ENGINE
    from recut.models import resolve

    engine = ENGINE(resolve(path=str(folder)))
    engine.load()
    return engine


def check(folder: str | Path = DEFAULT_OUT, scenes: int = 20, steps: int = 25, guidance: float = 5.0) -> dict[str, Any]:
    """The quality bar: recolour held-out scenes at t_s = 0 from their depth; silhouette IoU and colour."""
    from engines.common import sampling
    from engines.gen1.sampler import SampleSettings, sample

    engine = load_gen1(folder)
    g = engine.components
    uncond = sampling.embed(g.base, "")
    rows = []
    for i, s in enumerate(heldout_scenes(scenes)):
        clip = toy.render(s)
        prompt, colour = recolour_prompt(s, i)
        maps = engine.structure_maps("depth", clip.frames)
        out = sample(
            g, maps, sampling.embed(g.base, prompt), uncond, SampleSettings(0, steps, guidance, 1.0, 0.0, seed=i)
        )
        iou = silhouette_iou(out, colour, clip.masks[:, 0])
        judged = judge.judge_object(out, colour, None, None)
        rows.append({"prompt": prompt, "iou": round(iou, 3), "colour": bool(judged["colour"])})
    iou_rate = float(np.mean([r["iou"] >= BAR_IOU for r in rows]))
    colour_rate = float(np.mean([r["colour"] for r in rows]))
    return {
        "scenes": len(rows),
        "steps": steps,
        "guidance": guidance,
        "silhouette_rate": iou_rate,
        "colour_rate": colour_rate,
        "mean_iou": round(float(np.mean([r["iou"] for r in rows])), 3),
        "passed": iou_rate >= BAR_RATE and colour_rate >= BAR_RATE,
        "rows": rows,
    }


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m toyworld.zoo.gen1")
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("train")
    a.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a.add_argument("--quick", action="store_true")
    a.add_argument("--threads", type=int, default=1)
    a.add_argument("--resume", action="store_true")
    a.add_argument("--cache", type=Path, default=None)
    a.add_argument("--stage1-steps", type=int, default=None)
    a.add_argument("--stage2-steps", type=int, default=None)
    e = sub.add_parser("export", help="a model folder from a training's last checkpoint")
    e.add_argument("work", type=Path, help="the training's .work folder")
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--cache", type=Path, default=None, help="the training's data cache (default: WORK/cache)")
    c = sub.add_parser("check")
    c.add_argument("--out", type=Path, default=DEFAULT_OUT)
    c.add_argument("--scenes", type=int, default=20)
    c.add_argument("--steps", type=int, default=25)
    c.add_argument("--guidance", type=float, default=5.0)
    args = p.parse_args(argv)
    if args.cmd == "train":
        r = QUICK if args.quick else Gen1Recipe()
        over = {k: v for k, v in (("stage1_steps", args.stage1_steps), ("stage2_steps", args.stage2_steps)) if v}
        info = train(
            args.out, args.quick, threads=args.threads, resume=args.resume, cache=args.cache, recipe=replace(r, **over)
        )
        print(
            json.dumps(
                {k: v for k, v in info.items() if k != "metrics"}
                | {"metrics": {k: v for k, v in info["metrics"].items() if k != "rows"}},
                indent=1,
            )
        )
    elif args.cmd == "export":
        print(f"step {export_checkpoint(args.work, args.out, args.cache)} -> {args.out}")
    else:
        set_threads(2)
        res = check(args.out, args.scenes, args.steps, args.guidance)
        print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
