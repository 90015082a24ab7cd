"""The toy ReVideo control module, trained on the toy SVD in the paper's three stages.

* ``motion`` (motion prior): trajectories only. The content condition is empty (M = 0 everywhere);
  the motion maps come from 1..10 of the clip's object tracks drawn as the paper samples them.
* ``decouple``: composite clips V = V1·M + V2·(1 − M). The edited area 1 − M is a region around one
  object of V2 over the whole clip (a box, or the object's dilated trail: an irregular mask); the
  content condition is V·M and the motion maps come from that object's tracks, so that content and
  motion come from different sources. A third of the samples use V2 = V1 (an ordinary clip).
* ``deblock``: the same data; only W_k and W_v of the temporal self-attention (control module and
  base UNet) and SAFM's H are trained.

The toy world's ground truth gives the tracks: every point of a stride-4 grid on an object at frame 0
moves with the object's centre (toy objects translate). The base UNet stays frozen in stages 1-2.
Each stage is its own recipe, starts from the previous stage's output, checkpoints every
``checkpoint_every`` steps and resumes. ``fusion`` (``safm``, ``sum``, ``safm_no_t``) and
``deblock_all`` (stage 3 trains the whole module and H) make the ablation models.

Outputs: ``models/toy/revideo.work/<stage>`` (the control module after each stage), and, after
``deblock``, ``models/toy/revideo``: ``control`` (float16), ``base_kv.safetensors`` (the base's tuned
temporal K/V) and links to the toy SVD's parts.

CLI::

    python -m toyworld.zoo.revideo train STAGE [--quick] [--threads N] [--steps N] [--fusion F] [--tag T]
    python -m toyworld.zoo.revideo check [--model DIR] [--scenes N]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from engines.common.svd import unet_forward
from engines.common.tracks import Tracks, motion_maps, sample_tracks
from engines.revideo.control import ControlModule, temporal_kv_names
from toyworld import scene as toy
from toyworld.zoo import svd, t2i
from toyworld.zoo._util import (
    load_checkpoint,
    log,
    lr_at,
    save_checkpoint,
    set_threads,
    write_info,
    write_model_folder,
)

TOY = t2i.TOY_ROOT
WORK = TOY / "revideo.work"
DEFAULT_OUT = TOY / "revideo"
TRAIN_SEED = 1500
STAGES = ("motion", "decouple", "deblock")
ENCODER_CHANNELS = (16, 32, 32)
ENCODER_STRIDES = (2, 2, 1)  # the toy VAE downsamples by 4
TRACK_STRIDE = 4
MAP_SIGMA = 2.0


@dataclass(frozen=True)
class StageRecipe:
    stage: str = "motion"
    clips: int = 1200
    batch: int = 8
    steps: int = 1200
    lr: float = 1e-4
    uncond: float = 0.1
    max_aug: float = 0.1
    same_clip: float = 1 / 3
    fusion: str = "safm"
    deblock_all: bool = False
    checkpoint_every: int = 200
    seed: int = 0


STEPS = {"motion": 800, "decouple": 1000, "deblock": 400}
LR = {"motion": 5e-4, "decouple": 5e-4, "deblock": 2e-4}


def default_recipe(stage: str, quick: bool = False) -> StageRecipe:
    if quick:
        return StageRecipe(stage=stage, clips=6, batch=2, steps=2, checkpoint_every=2)
    return StageRecipe(stage=stage, steps=STEPS[stage], lr=LR[stage])


# --------------------------------------------------------------------------- data


def object_tracks(clip: toy.ToyClip, k: int, stride: int = TRACK_STRIDE) -> Tracks:
    """The ground-truth tracks of object ``k``: the stride grid's points on it at frame 0, each moving
    with its centre; visible while the centre is."""
    _t, _, h, w = clip.full_masks.shape
    ys, xs = np.mgrid[stride // 2 : h : stride, stride // 2 : w : stride]
    on = clip.full_masks[0, k][ys, xs]
    start = np.stack([xs[on], ys[on]], 1).astype(np.float32)
    offset = clip.tracks[k] - clip.tracks[k][0]
    pts = start[:, None, :] + offset[None]
    inside = (pts[..., 0] >= 0) & (pts[..., 0] <= w - 1) & (pts[..., 1] >= 0) & (pts[..., 1] <= h - 1)
    return Tracks(pts.astype(np.float32), inside & clip.visible[k][None])


def trail_mask(clip: toy.ToyClip, k: int, rng: np.random.Generator) -> np.ndarray:
    """``[H, W]`` bool: the area object ``k`` covers over the clip, as its box (half the time) or its
    trail dilated by 3-6 px (an irregular mask)."""
    union = clip.full_masks[:, k].any(0)
    if rng.random() < 0.5:
        ys, xs = np.nonzero(union)
        pad = int(rng.integers(2, 7))
        m = np.zeros_like(union)
        m[max(0, ys.min() - pad) : ys.max() + pad + 1, max(0, xs.min() - pad) : xs.max() + pad + 1] = True
        return m
    r = int(rng.integers(3, 7))
    return cv2.dilate(union.astype(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8)).astype(bool)


@dataclass
class Batch:
    x0: torch.Tensor  # latents [B, T, C, h, w]
    first: torch.Tensor  # [B, 3, H, W] in [-1, 1]
    emb: torch.Tensor  # [B, 1, D]
    content: torch.Tensor  # [B, T, 3, H, W] in [-1, 1]
    motion: torch.Tensor  # [B, T, 2, H, W]
    mask: torch.Tensor  # [B, T, 1, H, W], 1 = unedited


def make_batch(
    clips: list[toy.ToyClip],
    data: svd.ClipData,
    idx: np.ndarray,
    stage: str,
    r: StageRecipe,
    rng: np.random.Generator,
    parts: tuple[Any, Any, Any],
) -> Batch:
    vae, encoder, proc = parts
    frames, maps, masks, lats, embs = [], [], [], [], []
    for i in idx:
        c1 = clips[i]
        _t, h, w = c1.frames.shape[:3]
        if stage == "motion":
            k = int(rng.integers(len(c1.scene.objects)))
            tracks = sample_tracks(object_tracks(c1, k), rng)
            frames.append(c1.frames)
            masks.append(np.zeros((h, w), bool))
            lats.append(data.latents[i])
            embs.append(data.emb[i])
        else:
            j = i if rng.random() < r.same_clip else int(rng.integers(len(clips)))
            c2 = clips[j]
            k = int(rng.integers(len(c2.scene.objects)))
            area = trail_mask(c2, k, rng)
            v = np.where(area[None, :, :, None], c2.frames, c1.frames)
            tracks = sample_tracks(object_tracks(c2, k), rng)
            frames.append(v)
            masks.append(~area)
            lats.append(None)
            embs.append(None)
        maps.append(motion_maps(tracks, h, w, MAP_SIGMA))
    video = np.stack(frames)
    todo = [n for n, lat in enumerate(lats) if lat is None]
    if todo:
        b_t = video[todo].reshape(-1, *video.shape[2:])
        with torch.no_grad():
            enc = t2i.encode_images(vae, b_t).reshape(len(todo), video.shape[1], -1, *data.latents.shape[-2:])
            emb = svd.image_embeddings(encoder, proc, video[todo, 0])
        for n, e, m in zip(todo, enc, emb, strict=True):
            lats[n], embs[n] = e, m
    pix = svd.to_pixels(video)
    mask = torch.from_numpy(np.stack(masks)).float()[:, None, None].expand(-1, video.shape[1], 1, -1, -1)
    return Batch(torch.stack(lats), pix[:, 0], torch.stack(embs), pix, torch.from_numpy(np.stack(maps)), mask)


# --------------------------------------------------------------------------- training


def load_base(svd_dir: Path = svd.DEFAULT_OUT) -> Any:
    from diffusers import UNetSpatioTemporalConditionModel

    return UNetSpatioTemporalConditionModel.from_pretrained(svd_dir / "unet").float().eval().requires_grad_(False)


def trainable(stage: str, r: StageRecipe, control: ControlModule, unet: Any) -> list[torch.nn.Parameter]:
    """Stages 1-2: the whole control module. Stage 3: temporal W_k/W_v of both and H (or, with
    ``deblock_all``, the whole module and the base's K/V)."""
    if stage != "deblock":
        return list(control.parameters())
    cn, un = dict(control.named_parameters()), dict(unet.named_parameters())
    params = [un[n] for n in temporal_kv_names(unet)]
    if r.deblock_all:
        return params + list(control.parameters())
    params += [cn[n] for n in temporal_kv_names(control)]
    if control.safm is not None:
        params += list(control.safm.parameters())
    return params


#: Each stage's recipe name; the recipe's folder is its output, and a stage finds the previous one's
#: beside its own output (a quick run's folder root) or at the default place.
RECIPE = {"motion": "revideo_motion", "decouple": "revideo_decouple", "deblock": "revideo"}
FOLDER = {
    "revideo_motion": WORK / "revideo_motion",
    "revideo_decouple": WORK / "revideo_decouple",
    "revideo": DEFAULT_OUT,
}


def _find(out: Path, name: str) -> Path:
    """Recipe ``name``'s folder beside ``out`` when there is one (a run under another root), else its
    default folder."""
    beside = out.parent / name
    return beside if beside.exists() else FOLDER.get(name, TOY / name)


def train(
    stage: str,
    out: str | Path,
    quick: bool = False,
    seed: int = 0,
    threads: int = 1,
    recipe: StageRecipe | None = None,
    prev: Path | None = None,
    svd_dir: Path | None = None,
) -> dict[str, Any]:
    """Steps: 1. data; 2. the control module (the previous stage's, or for ``motion`` a copy of the
    base's encoder), resumed from the last checkpoint; 3. the loop; 4. save the stage (after ``deblock``:
    the model folder)."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}; got {stage!r}")
    set_threads(threads)
    r = replace(recipe or default_recipe(stage, quick), stage=stage, seed=seed)
    out = Path(out)
    ckpt = out.with_name(out.name + ".work") / "checkpoint"
    svd_dir = Path(svd_dir) if svd_dir else _find(out, "svd")
    if stage != "motion" and prev is None:
        prev = _find(out, RECIPE[STAGES[STAGES.index(stage) - 1]])
    t0 = time.time()
    # 1. data
    parts = svd.load_parts()
    scenes = svd.i2v_scenes(TRAIN_SEED, r.clips)
    clips = [toy.render(s) for s in scenes]
    data = svd.build_data(scenes, *parts, None if quick else WORK / "cache", f"revideo-{TRAIN_SEED}-{r.clips}")
    # 2. the modules
    unet = load_base(svd_dir)
    if stage == "motion":
        torch.manual_seed(r.seed)
        control = ControlModule.from_unet(
            unet, encoder_channels=ENCODER_CHANNELS, encoder_strides=ENCODER_STRIDES, fusion=r.fusion
        )
    else:
        assert prev is not None
        control = ControlModule.from_pretrained(prev / "control").float()
        if stage == "decouple" and control.config.fusion != r.fusion:
            control = _refused(control, unet, r.fusion)
        kv = prev / "base_kv.safetensors"
        if kv.exists():
            from engines.common.finetune import load_delta

            load_delta(unet, kv)
    control.requires_grad_(False)
    unet.requires_grad_(False)
    params = trainable(stage, r, control, unet)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=r.lr, weight_decay=1e-2)
    modules = {"control": control, "unet_kv": _KV(unet)}
    start = load_checkpoint(ckpt, modules, opt)
    if start:
        log(f"revideo {stage}: resumed at step {start}")
    control.train()
    rng = np.random.default_rng([r.seed, start])
    gen = torch.Generator().manual_seed(r.seed * 1000 + start)
    losses: list[float] = []
    # 3. the loop
    for step in range(start, r.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step / r.steps, r.lr)
        b = make_batch(clips, data, rng.integers(0, len(clips), r.batch), stage, r, rng, parts)

        def fn(
            x: torch.Tensor, c_noise: torch.Tensor, emb: torch.Tensor, ids: torch.Tensor, b: Batch = b
        ) -> torch.Tensor:
            down, mid = control(x, c_noise, emb, ids, b.content, b.motion, b.mask)
            return unet_forward(unet, x, c_noise, emb, ids, down, mid)

        io = svd.I2VRecipe(uncond=r.uncond, max_aug=r.max_aug)
        loss = svd.edm_loss(fn, b.x0, b.first, b.emb, parts[0], gen, io)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        if (step + 1) % 25 == 0:
            log(
                f"revideo {stage} step {step + 1}/{r.steps} loss {np.mean(losses[-25:]):.4f} ({time.time() - t0:.0f} s)"
            )
        if (step + 1) % r.checkpoint_every == 0 or step + 1 == r.steps:
            save_checkpoint(ckpt, step + 1, modules, opt)
    # 4. save
    control.eval()
    if stage == "deblock":
        export(out, control, unet, svd_dir)
    else:
        save_stage(out, control, unet)
    info = {
        "recipe": RECIPE[stage],
        "settings": asdict(r),
        "quick": quick,
        "train_time_s": round(time.time() - t0, 1),
        "final_loss": round(float(np.mean(losses[-50:])), 5) if losses else None,
        "resumed_from": start,
    }
    if stage == "deblock":  # the model folder: its quality figures
        info["metrics"] = check(out, scenes=2 if quick else 8, steps=2 if quick else 25)
    write_info(out, info)
    return info


class _KV(torch.nn.Module):
    """The base UNet's temporal K/V, as a module to checkpoint (only those change)."""

    def __init__(self, unet: Any):
        super().__init__()
        self.unet = unet
        self.names = temporal_kv_names(unet)

    def state_dict(self, *a: Any, **k: Any) -> dict[str, torch.Tensor]:  # type: ignore[override]
        named = dict(self.unet.named_parameters())
        return {n: named[n].detach() for n in self.names}

    def load_state_dict(self, sd: Any, *a: Any, **k: Any) -> Any:  # type: ignore[override]
        named = dict(self.unet.named_parameters())
        with torch.no_grad():
            for n, v in sd.items():
                named[n].copy_(v)


def _refused(control: ControlModule, unet: Any, fusion: str) -> ControlModule:
    """The stage-1 module under another fusion (an ablation): same encoders, a new H (or none)."""
    new = ControlModule(**{**dict(control.config), "fusion": fusion})
    sd = {k: v for k, v in control.state_dict().items() if not k.startswith("safm.")}
    new.load_state_dict(sd, strict=False)
    return new


def _write_control(folder: Path, control: ControlModule, unet: Any, dtype: torch.dtype) -> None:
    """``control`` and ``base_kv.safetensors`` (the base's temporal K/V) in ``dtype``."""
    from engines.common.finetune import save_delta

    control.to(dtype).save_pretrained(folder / "control")
    control.float()
    named = dict(unet.named_parameters())
    kv = {n: named[n].detach().to(dtype) for n in temporal_kv_names(unet)}
    save_delta(kv, folder / "base_kv.safetensors", {"part": "base temporal K/V"})  # type: ignore[arg-type]


def save_stage(out: Path, control: ControlModule, unet: Any) -> None:
    """A stage's output (float32, the next stage starts from it)."""
    write_model_folder(out, lambda tmp: _write_control(tmp, control, unet, torch.float32))


def export(out: Path, control: ControlModule, unet: Any, svd_dir: Path) -> None:
    """The model folder: ``control`` (float16), ``base_kv.safetensors`` and links to the SVD's parts."""
    parts = ("unet", "vae", "image_encoder", "feature_extractor", "scheduler")
    index = json.loads((svd_dir / "model_index.json").read_text())
    index |= {"_class_name": "ReVideo", "control": ["engines.revideo.control", "ControlModule"]}
    write_model_folder(
        out,
        lambda tmp: _write_control(tmp, control, unet, torch.float16),
        {name: (svd_dir / name).resolve() for name in parts},
        index,
    )


# --------------------------------------------------------------------------- check

HELDOUT_SEED = 9500
MODES = ("recolour", "trajectory", "both")
STEP_PX = {"left": (-3.0, 0.0), "right": (3.0, 0.0), "up": (0.0, -3.0), "down": (0.0, 3.0)}
BAR_TRAJECTORY_PX = 4.0
BAR_KEPT = 0.75
BAR_PSNR = 25.0


def heldout_scenes(n: int) -> list[toy.ToyScene]:
    """Single-object scenes (a straight motion or still, plain or gradient background) never trained on."""
    out = []
    rng = np.random.default_rng(HELDOUT_SEED)
    while len(out) < n:
        s = toy.sample_scene(
            rng, max_objects=1, frames=8, motions=("static", "left", "right", "up", "down"), pan_prob=0
        )
        if s.background.kind != "stripes":  # Lucas-Kanade cannot follow a flat object over stripes
            out.append(s)
    return out


@dataclass
class Case:
    """One edit of a held-out scene: its input, edited first frame, area, motion maps and requested path."""

    mode: str
    scene: toy.ToyScene
    frames: np.ndarray
    first: np.ndarray
    area: np.ndarray  # [T, H, W] bool
    motion: np.ndarray  # [T, 2, H, W]
    colour: str
    path: np.ndarray  # [T, 2] requested centre path


def make_case(scene: toy.ToyScene, mode: str, index: int, max_tracks: int = 10) -> Case:
    """``recolour``: new colour, the input's own tracks (Lucas-Kanade, as the engine's ``keep``);
    ``trajectory``: same colour, a drawn straight path in a direction the object did not take;
    ``both``: new colour on a drawn path. Areas: the trail (dilated 3 px) for recolour, the box around
    the trail and the new path otherwise."""
    from engines.common.tracks import drawn_path, track_grid
    from engines.revideo.editing import area_tracks, condition_maps

    clip = toy.render(scene)
    obj = scene.objects[0]
    t, h, w = clip.frames.shape[:3]
    colours = [c for c in toy.COLOURS if c not in (obj.colour, scene.background.colour)]
    colour = colours[index % len(colours)] if mode != "trajectory" else obj.colour
    edited = toy.render(scene.model_copy(update={"objects": [obj.model_copy(update={"colour": colour})]}))
    first = edited.frames[0]
    start = clip.tracks[0, 0]
    trail = clip.full_masks[:, 0].any(0)
    if mode == "recolour":
        area = cv2.dilate(trail.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
        grid = track_grid(clip.frames)
        areas = np.repeat(area[None], t, 0)
        tracks = area_tracks({"motion": "keep"}, areas, grid, np.random.default_rng(index), max_tracks)
        path = clip.tracks[0].astype(np.float64)
    else:
        options = [d for d in STEP_PX if d != obj.motion]
        d = STEP_PX[options[index % len(options)]]
        end = np.clip(start + 7 * np.asarray(d), 8, 55)
        tracks = drawn_path([[0, *start], [t - 1, *end]], t)
        path = tracks.points[0].astype(np.float64)
        r = int(np.ceil(np.sqrt(trail.sum() / t / np.pi) * 1.6)) + 3
        lo = np.minimum(path.min(0), clip.tracks[0].min(0)) - r
        hi = np.maximum(path.max(0), clip.tracks[0].max(0)) + r
        area = np.zeros((h, w), bool)
        area[max(0, int(lo[1])) : int(hi[1]) + 1, max(0, int(lo[0])) : int(hi[0]) + 1] = True
        areas = np.repeat(area[None], t, 0)
    motion = condition_maps([tracks], (t, h, w), MAP_SIGMA)
    return Case(mode, scene, clip.frames, first, areas, motion, colour, path)


def run_case(components: Any, case: Case, steps: int, seed: int, scale: float = 1.0) -> np.ndarray:
    from engines.common.svd import I2VSettings
    from engines.revideo.sampler import generate

    s = I2VSettings(frames=case.frames.shape[0], steps=steps, fps=svd.FPS, seed=seed)
    out, _ = generate(components, case.frames, case.first, ~case.area, case.motion, s, s.frames, 1, scale)
    return out


def measure(case: Case, out: np.ndarray) -> dict[str, Any]:
    """Trajectory error (the judged centroid of the object's colour against the requested path, px),
    whether the object keeps its colour and shape on every frame, and the PSNR outside the area."""
    from engines.common.metrics import psnr, trajectory_error
    from toyworld import judge

    obj = case.scene.objects[0]
    j = judge.judge_object(out, case.colour, obj.shape, min_present=1.0)
    err = trajectory_error(j["track"], case.path, np.ones(len(out), bool))
    outside = ~case.area
    return {
        "mode": case.mode,
        "trajectory_px": round(float(err), 2) if np.isfinite(err) else None,
        "kept": bool(j["colour"] and j["shape"]),
        "unedited_psnr": round(float(psnr(out, case.frames, outside)), 2),
    }


def load_components(folder: str | Path = DEFAULT_OUT, control: bool = True) -> Any:
    """The revideo engine's components for a model folder (``control`` False: the base alone)."""
    from engines.revideo import ENGINE
    from engines.revideo.sampler import ReVideoComponents
    from recut.models import resolve

    engine = ENGINE(resolve(path=str(folder)))
    c = engine.components
    return c if control else ReVideoComponents(c.base, None)


def evaluate(components: Any, scenes: int = 8, steps: int = 25, modes: Sequence[str] = MODES) -> dict[str, Any]:
    """Every mode on ``scenes`` held-out scenes: the rows and their means per mode."""
    rows = []
    for i, sc in enumerate(heldout_scenes(scenes)):
        for mode in modes:
            case = make_case(sc, mode, i)
            rows.append({"scene": i, **measure(case, run_case(components, case, steps, seed=i))})
    summary: dict[str, Any] = {}
    for mode in modes:
        rs = [r for r in rows if r["mode"] == mode]
        errs = [r["trajectory_px"] for r in rs if r["trajectory_px"] is not None]
        summary[mode] = {
            "trajectory_px": round(float(np.mean(errs)), 2) if errs else None,
            "found": len(errs) / len(rs),
            "kept_rate": round(float(np.mean([r["kept"] for r in rs])), 3),
            "unedited_psnr": round(float(np.mean([r["unedited_psnr"] for r in rs])), 2),
        }
    return {"scenes": scenes, "steps": steps, "summary": summary, "rows": rows}


def check(folder: str | Path = DEFAULT_OUT, scenes: int = 8, steps: int = 25) -> dict[str, Any]:
    """The quality bar: with a drawn trajectory the object follows it (mean error <= 4 px) and keeps its
    colour and shape (>= 75 % of the scenes), and the region outside the area stays (PSNR >= 25 dB)."""
    res = evaluate(load_components(folder), scenes, steps)
    tr = res["summary"]["trajectory"]
    res["passed"] = bool(
        tr["trajectory_px"] is not None
        and tr["trajectory_px"] <= BAR_TRAJECTORY_PX
        and tr["kept_rate"] >= BAR_KEPT
        and min(m["unedited_psnr"] for m in res["summary"].values()) >= BAR_PSNR
    )
    return res


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m toyworld.zoo.revideo")
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("train", help="one stage (its default output: the stage's recipe folder)")
    a.add_argument("stage", choices=STAGES)
    a.add_argument("--out", type=Path, default=None)
    a.add_argument("--prev", type=Path, default=None, help="the previous stage's folder (default: found)")
    a.add_argument("--svd", type=Path, default=None, help="the base model folder (default: found)")
    a.add_argument("--quick", action="store_true")
    a.add_argument("--threads", type=int, default=1)
    a.add_argument("--steps", type=int, default=None)
    a.add_argument("--fusion", choices=("safm", "sum", "safm_no_t"), default="safm")
    a.add_argument("--deblock-all", action="store_true", help="stage 3 trains the whole module (an ablation)")
    c = sub.add_parser("check")
    c.add_argument("--out", type=Path, default=DEFAULT_OUT)
    c.add_argument("--scenes", type=int, default=8)
    c.add_argument("--steps", type=int, default=25)
    args = p.parse_args(argv)
    if args.cmd == "train":
        r = default_recipe(args.stage, args.quick)
        r = replace(r, steps=args.steps or r.steps, fusion=args.fusion, deblock_all=args.deblock_all)
        out = args.out or FOLDER[RECIPE[args.stage]]
        info = train(args.stage, out, args.quick, threads=args.threads, recipe=r, prev=args.prev, svd_dir=args.svd)
        print(json.dumps(info, indent=1))
    else:
        set_threads(2)
        print(json.dumps(check(args.out, args.scenes, args.steps), indent=1))


if __name__ == "__main__":
    main()
