"""Toy CLIP: a small transformers ``CLIPModel`` trained contrastively on toy frames.

* Text tower: vocab = the toy tokenizer (615 ids), hidden 64, 3 layers, 4 heads,
  ``max_position_embeddings`` 40 (:data:`tokenizer.MAX_LENGTH`).
* Vision tower: 64x64 images, patch 8, hidden 64, 4 layers, 4 heads.  Projection dim 64.
* Images are normalised with mean = std = 0.5 (pixel values in [-1, 1], the same range as
  ``data.to_model``); the saved ``CLIPProcessor`` (size 64, no centre crop) does this.
* Training data: frames of multi-object scenes with their full captions and of single-object
  scenes with the full caption, the object caption (``"a small red circle moving left"``) or the
  zero-shot template ``"a red circle"``.  CLIP loss with soft targets (identical captions in a
  batch are all positives), learnable temperature, AdamW.
* Zero-shot evaluation (:func:`evaluate`): single-object held-out frames (split ``heldout1``);
  colour accuracy = argmax over ``"a {colour} {true shape}"`` for the 8 colours, shape accuracy =
  argmax over ``"a {true colour} {shape}"`` for the 3 shapes; also the joint 24-way accuracy.

The text tower alone is exported as ``CLIPTextModel`` to ``models/toy/text_encoder``
(:func:`export_text_encoder`): the diffusion models' text encoder (use ``last_hidden_state``,
dim 64, with the toy tokenizer padded to ``max_length`` 40, as SD does with 77).

API::

    load_clip(folder) -> (CLIPModel, CLIPProcessor)
    load_text_encoder(folder=models/toy/text_encoder) -> CLIPTextModel
    encode_text(tokenizer, text_encoder, captions) -> last_hidden_state [B, 40, 64]
    zero_shot(model, processor, images_uint8, prompts) -> probs [N, len(prompts)]

Heavy libraries (transformers) are imported inside the functions that use them, so that importing
this module costs only torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from recut.models import REPO_ROOT
from toyworld.scene import COLOURS, SHAPES, object_caption, render, sample_scenes
from toyworld.tokenizer import MAX_LENGTH, build_tokenizer
from toyworld.zoo import data
from toyworld.zoo._util import Timer, log, lr_at, progress, seed_all, set_threads, write_info

DEFAULT_DIR = REPO_ROOT / "models" / "toy" / "clip"
TEXT_ENCODER_DIR = REPO_ROOT / "models" / "toy" / "text_encoder"
CLIP_MEAN = (0.5, 0.5, 0.5)
CLIP_STD = (0.5, 0.5, 0.5)
BAR = 0.90
LR = 1e-3
#: Wall-time cap (see :func:`train`).
TRAIN_MINUTES = 18


def build_clip(tokenizer: Any) -> Any:
    from transformers import CLIPConfig, CLIPModel

    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    cfg = CLIPConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=256,
            num_hidden_layers=3,
            num_attention_heads=4,
            max_position_embeddings=MAX_LENGTH,
            projection_dim=64,
            bos_token_id=bos,
            eos_token_id=eos,
            pad_token_id=eos,
        ),
        vision_config=dict(
            image_size=64,
            patch_size=8,
            hidden_size=64,
            intermediate_size=256,
            num_hidden_layers=4,
            num_attention_heads=4,
            projection_dim=64,
        ),
        projection_dim=64,
    )
    return CLIPModel(cfg)


def build_processor(tokenizer: Any) -> Any:
    from transformers import CLIPImageProcessor, CLIPProcessor

    ip = CLIPImageProcessor(
        do_resize=True,
        size={"shortest_edge": 64},
        do_center_crop=True,  # identity on the square toy frames; crops other shapes to 64x64
        crop_size={"height": 64, "width": 64},
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
        do_convert_rgb=True,
    )
    return CLIPProcessor(image_processor=ip, tokenizer=tokenizer)


def load_clip(folder: str | Path = DEFAULT_DIR) -> tuple[Any, Any]:
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(str(folder)).eval()
    proc = CLIPProcessor.from_pretrained(str(folder))
    return model, proc


def load_text_encoder(folder: str | Path = TEXT_ENCODER_DIR) -> Any:
    from transformers import CLIPTextModel

    return CLIPTextModel.from_pretrained(str(folder)).eval()


@torch.no_grad()
def encode_text(tokenizer: Any, text_encoder: Any, captions: list[str]) -> torch.Tensor:
    ids = tokenizer(captions, padding="max_length", max_length=MAX_LENGTH, truncation=True, return_tensors="pt")
    return text_encoder(ids.input_ids).last_hidden_state


def _pixels(uint8: np.ndarray) -> torch.Tensor:
    return data.to_model(uint8)  # mean = std = 0.5 on [0, 1] == [-1, 1]


@torch.no_grad()
def zero_shot(model: Any, processor: Any, images: np.ndarray, prompts: list[str]) -> torch.Tensor:
    """Softmax over ``prompts`` for each uint8 image ``[N,64,64,3]`` (uses the processor)."""
    pv = processor(images=list(images), return_tensors="pt")["pixel_values"]
    t = processor.tokenizer(prompts, padding=True, return_tensors="pt")
    out = model(input_ids=t.input_ids, attention_mask=t.attention_mask, pixel_values=pv)
    return out.logits_per_image.softmax(-1)


@torch.no_grad()
def evaluate(
    folder: str | Path = DEFAULT_DIR, n: int = 480, model: Any = None, processor: Any = None
) -> dict[str, Any]:
    """Zero-shot colour / shape accuracy on ``n`` single-object held-out frames."""
    if model is None:
        model, processor = load_clip(folder)
    model.eval()
    b = data.frame_batch("heldout1", n, seed=1)
    pv = processor(images=list(b["uint8"]), return_tensors="pt")["pixel_values"]
    proc_err = float((pv - _pixels(b["uint8"])).abs().max())
    cols, shapes = list(COLOURS), list(SHAPES)
    prompts = [f"a {c} {s}" for c in cols for s in shapes]
    t = processor.tokenizer(prompts, padding=True, return_tensors="pt")
    o = model(input_ids=t.input_ids, attention_mask=t.attention_mask, pixel_values=pv)
    img = F.normalize(o.image_embeds, dim=-1)
    txt = F.normalize(o.text_embeds, dim=-1)
    sim = (img @ txt.T).reshape(n, len(cols), len(shapes))
    scenes = list(sample_scenes(data.split_seed("heldout1"), n, size=data.SIZE, max_objects=1))  # no render
    tc = torch.tensor([cols.index(sc.objects[0].colour) for sc in scenes])
    ts = torch.tensor([shapes.index(sc.objects[0].shape) for sc in scenes])
    ar = torch.arange(n)
    colour_acc = float((sim[ar, :, ts].argmax(-1) == tc).float().mean())
    shape_acc = float((sim[ar, tc, :].argmax(-1) == ts).float().mean())
    joint = sim.reshape(n, -1).argmax(-1)
    joint_acc = float((joint == tc * len(shapes) + ts).float().mean())
    res = {
        "colour_acc": colour_acc,
        "shape_acc": shape_acc,
        "joint24_acc": joint_acc,
        "n": n,
        "bar": BAR,
        "processor_max_abs_diff": proc_err,
    }
    res["passed"] = bool(colour_acc >= BAR and shape_acc >= BAR and proc_err < 1e-3)
    return res


def _training_set(n_multi: int, n_single: int, seed: int) -> tuple[np.ndarray, list[list[str]], np.ndarray]:
    """Frames, per frame the list of captions it may be paired with, and per frame the
    template index ``colour * 3 + shape`` of a single-object frame (-1 for multi-object)."""
    rng = np.random.default_rng([seed, 77])
    frames, caps, labels = [], [], []
    cols, shapes = list(COLOURS), list(SHAPES)
    for split, n in (("train", n_multi), ("train1", n_single)):
        kw = {"size": 64}
        if split == "train1":
            kw["max_objects"] = 1
        for sc in sample_scenes(data.split_seed(split), n, **kw):
            c = render(sc)
            options = [c.caption]
            label = -1
            if len(sc.objects) == 1:
                o = sc.objects[0]
                options += [object_caption(o), f"a {o.colour} {o.shape}"]
                label = cols.index(o.colour) * len(shapes) + shapes.index(o.shape)
            for t in rng.choice(c.frames.shape[0], size=2, replace=False):
                frames.append(c.frames[t])
                caps.append(options)
                labels.append(label)
    return np.stack(frames), caps, np.array(labels)


def train(
    out: str | Path = DEFAULT_DIR,
    quick: bool = False,
    seed: int = 0,
    steps: int | None = None,
    max_seconds: float = TRAIN_MINUTES * 60,
    threads: int = 1,
) -> dict[str, Any]:
    """Contrastive training plus an auxiliary prompt classification: each single-object frame of
    the batch against the 24 templates ``"a {colour} {shape}"`` (cross-entropy with the CLIP
    logits), which gives hard negatives differing only in shape (random contrastive batches
    mostly differ in colour).  The LR schedule follows ``_util.progress`` (step or time fraction
    of ``max_seconds``, whichever is larger), so on a slow or shared machine it anneals on time
    and the run stops at the cap."""
    set_threads(threads)
    seed_all(seed)
    timer = Timer()
    tok = build_tokenizer()
    n_multi, n_single, batch = (16, 16, 16) if quick else (6000, 8000, 128)
    steps = steps or (3 if quick else 2500)
    log(f"clip: rendering {n_multi}+{n_single} scenes")
    frames_u8, caps, labels = _training_set(n_multi, n_single, seed)
    templates = [f"a {c} {s}" for c in COLOURS for s in SHAPES]
    tmpl = tok(templates, padding=True, return_tensors="pt")
    frames = _pixels(frames_u8)
    n = len(frames)
    model = build_clip(tok)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.05, betas=(0.9, 0.98))
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng([seed, 5])
    model.train()
    stopped_early, done = False, 0
    for step in range(steps):
        prog = progress(step, steps, timer, max_seconds)
        if prog >= 1.0:
            stopped_early = True
            break
        done = step + 1
        lr = lr_at(prog, LR)
        for pg in opt.param_groups:
            pg["lr"] = lr
        idx = torch.randint(0, n, (batch,), generator=g).tolist()
        x = frames[idx]
        if step % 2 == 1:
            x = x.flip(-1)  # captions carry left/right motion, but a single frame cannot show it
        texts = []
        for i in idx:
            opts = caps[i]
            # single-object frames: full caption 35%, object caption 25%, "a red circle" 40%
            texts.append(opts[0] if len(opts) == 1 else opts[int(rng.choice(3, p=[0.35, 0.25, 0.4]))])
        t = tok(texts, padding=True, return_tensors="pt")
        outp = model(input_ids=t.input_ids, attention_mask=t.attention_mask, pixel_values=x)
        logits = outp.logits_per_image
        same = torch.tensor([[a == b for b in texts] for a in texts], dtype=torch.float32)
        target = same / same.sum(-1, keepdim=True)
        loss = 0.5 * (
            torch.sum(-target * logits.log_softmax(-1), -1).mean()
            + torch.sum(-target * logits.T.log_softmax(-1), -1).mean()
        )
        lab = torch.from_numpy(labels[idx])
        single = lab >= 0
        if bool(single.any()):
            temb = model(input_ids=tmpl.input_ids, attention_mask=tmpl.attention_mask, pixel_values=x[:1]).text_embeds
            aux_logits = model.logit_scale.exp() * outp.image_embeds[single] @ temb.T
            loss = loss + F.cross_entropy(aux_logits, lab[single])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, float(np.log(100.0)))
        if step % 50 == 0 or step == steps - 1:
            log(
                f"clip step {step}/{steps} p {prog:.3f} loss {loss.item():.4f} "
                f"scale {model.logit_scale.exp().item():.1f} lr {lr:.2e} t {timer.elapsed():.0f}s"
            )
        if not quick and step % 250 == 249:
            model.eval()
            log(f"clip eval@{step + 1}: {evaluate(model=model, processor=build_processor(tok), n=160)}")
            model.train()
    model.eval()
    train_time = timer.elapsed()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    build_processor(tok).save_pretrained(str(out))
    metrics = evaluate(out, n=32 if quick else 480)
    info = {
        "recipe": "clip",
        "quick": quick,
        "seed": seed,
        "steps": done,
        "planned_steps": steps,
        "stopped_early": stopped_early,
        "batch": batch,
        "train_frames": n,
        "train_time_s": round(train_time, 1),
        "threads": threads,
        "metrics": metrics,
    }
    write_info(out, info)
    log(f"clip done: {info}")
    return info


def export_text_encoder(clip_dir: str | Path = DEFAULT_DIR, out: str | Path = TEXT_ENCODER_DIR) -> dict[str, Any]:
    """Save the CLIP text tower as a standalone ``CLIPTextModel`` and verify it."""
    from transformers import CLIPModel, CLIPTextModel

    clip = CLIPModel.from_pretrained(str(clip_dir)).eval()
    te = CLIPTextModel(clip.config.text_config)
    inner = getattr(te, "text_model", te)  # transformers >= 5: CLIPTextModel is the transformer itself
    inner.load_state_dict(clip.text_model.state_dict(), strict=True)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    te.eval().save_pretrained(str(out), safe_serialization=True)
    res = check_text_encoder(out, clip_dir)
    write_info(out, {"recipe": "text_encoder", "source": "clip text tower", "metrics": res})
    return res


@torch.no_grad()
def check_text_encoder(folder: str | Path = TEXT_ENCODER_DIR, clip_dir: str | Path = DEFAULT_DIR) -> dict[str, Any]:
    from transformers import CLIPModel

    tok = build_tokenizer()
    te = load_text_encoder(folder)
    clip = CLIPModel.from_pretrained(str(clip_dir)).eval()
    caps = [c.caption for c in data.clips("heldout", 16)] + ["a red circle", "a small blue square moving left"]
    ids = tok(caps, padding="max_length", max_length=MAX_LENGTH, return_tensors="pt").input_ids
    a = te(ids).last_hidden_state
    b = clip.text_model(input_ids=ids).last_hidden_state
    diff = float((a - b).abs().max())
    res = {
        "max_abs_diff": diff,
        "hidden_size": te.config.hidden_size,
        "max_position_embeddings": te.config.max_position_embeddings,
    }
    res["passed"] = diff < 1e-5 and tuple(a.shape[1:]) == (MAX_LENGTH, te.config.hidden_size)
    return res
