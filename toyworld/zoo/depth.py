"""Toy depth: a tiny backbone-free (ViT) ``DPTForDepthEstimation`` for 64x64 toy frames.

Config: image 64, patch 8, hidden 64, 4 layers, 4 heads, reassemble factors
(2, 1, 0.5, 0.25), neck (16, 32, 64, 64), fusion 32 -> ``predicted_depth`` ``[B, 64, 64]``.
Pixel values: mean = std = 0.5 (i.e. [-1, 1]); the saved ``DPTImageProcessor`` does this
(size 64x64, no aspect-ratio padding).

**Output convention: toy depth, not inverse depth** - ``predicted_depth`` approximates
:mod:`toyworld.scene`'s depth map (0 = nearest, 1 = farthest; the background is 1.0), unlike
Intel/dpt checkpoints which predict relative inverse depth.

Trained with an L1 loss (object pixels weighted x3) on toy depth maps of multi-object frames
(half of them chosen where objects occlude each other) plus a logistic ranking loss on the
mean predicted depth of occluding object pairs, every batch flipped/turned and its colour
channels reordered (:func:`augment`); the saved weights are an EMA.  In the toy world the depth order of
two objects that do not overlap is *not visible* (it follows the scene's list order), so the
quality figure (:func:`evaluate`) is the depth-order accuracy of **occluding** pairs (full
masks overlap, both visible): mean predicted depth inside each object's visible mask, nearer
object must have the lower value.  The all-pairs figure is reported for information.

API::

    load_depth(folder) -> (DPTForDepthEstimation, DPTImageProcessor)
    predict(model, processor, images_uint8 [N,64,64,3]) -> float32 [N,64,64]
    train(out, quick=False, seed=0) / evaluate(folder, n=300)

Heavy libraries (transformers) are imported inside the functions that use them, so that importing
this module costs only torch.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from recut.models import REPO_ROOT
from toyworld.zoo import data
from toyworld.zoo._util import EMA, Timer, log, lr_at, progress, seed_all, set_threads, write_info

DEFAULT_DIR = REPO_ROOT / "models" / "toy" / "depth"
BAR = 0.90
MIN_PIXELS = 8


TRAIN_SCENES = 20000
TRAIN_STEPS = 16000
TRAIN_BATCH = 32
LR = 1e-3
EMA_DECAY = 0.999
EVAL_EVERY = 1000  # steps between the training log's evaluations (150 held-out scenes)
#: Wall-time cap: the LR schedule follows the larger of the step and the time fraction, so on a
#: slow or shared machine it anneals on time and the run stops at the cap.
TRAIN_MINUTES = 28


def build_depth() -> Any:
    from transformers import DPTConfig, DPTForDepthEstimation

    cfg = DPTConfig(
        image_size=64,
        patch_size=8,
        num_channels=3,
        hidden_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=256,
        is_hybrid=False,
        backbone_out_indices=[0, 1, 2, 3],
        readout_type="project",
        reassemble_factors=[2, 1, 0.5, 0.25],
        neck_hidden_sizes=[16, 32, 64, 64],
        fusion_hidden_size=32,
        head_in_index=-1,
    )
    return DPTForDepthEstimation(cfg)


def build_processor() -> Any:
    from transformers import DPTImageProcessor

    return DPTImageProcessor(
        do_resize=True,
        size={"height": 64, "width": 64},
        keep_aspect_ratio=False,
        ensure_multiple_of=1,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        do_pad=False,
    )


def load_depth(folder: str | Path = DEFAULT_DIR) -> tuple[Any, Any]:
    from transformers import DPTForDepthEstimation, DPTImageProcessor

    return DPTForDepthEstimation.from_pretrained(str(folder)).eval(), DPTImageProcessor.from_pretrained(str(folder))


@torch.no_grad()
def predict(model: Any, processor: Any, images: np.ndarray) -> np.ndarray:
    pv = processor(images=list(images), return_tensors="pt")["pixel_values"]
    return model(pixel_values=pv).predicted_depth.numpy()


def _occlusion(c: Any, t: int) -> int:
    """Number of pixels where some object's silhouette is hidden by another one at frame t."""
    return int((c.full_masks[t] & ~c.masks[t]).sum())


@functools.lru_cache(maxsize=2)
def _eval_frames(n: int) -> list[tuple[np.ndarray, Any, int]]:
    """One frame per held-out multi-object scene: the most-occluded frame (or frame 0)."""
    out = []
    for c in data.clips("heldout", n):
        if len(c.scene.objects) < 2:
            continue
        t = int(np.argmax([_occlusion(c, t) for t in range(c.frames.shape[0])]))
        out.append((c.frames[t], c, t))
    return out


@torch.no_grad()
def evaluate(
    folder: str | Path = DEFAULT_DIR, n: int = 300, model: Any = None, processor: Any = None
) -> dict[str, Any]:
    """Depth-order accuracy of object pairs on multi-object scenes among ``n`` held-out scenes."""
    if model is None:
        model, processor = load_depth(folder)
    model.eval()
    items = _eval_frames(n)
    imgs = np.stack([f for f, _, _ in items])
    pv = processor(images=list(imgs), return_tensors="pt")["pixel_values"]
    proc_err = float((pv - data.to_model(imgs)).abs().max())
    pred = np.concatenate([model(pixel_values=pv[i : i + 64]).predicted_depth.numpy() for i in range(0, len(pv), 64)])
    occ_ok = occ_n = all_ok = all_n = 0
    mae = []
    for (_, c, t), p in zip(items, pred, strict=True):
        mae.append(float(np.abs(p - c.depth[t]).mean()))
        k = len(c.scene.objects)
        for i in range(k):
            for j in range(i + 1, k):
                mi, mj = c.masks[t, i], c.masks[t, j]
                if mi.sum() < MIN_PIXELS or mj.sum() < MIN_PIXELS:
                    continue
                di, dj = float(c.depth[t][mi].mean()), float(c.depth[t][mj].mean())
                if di == dj:
                    continue
                ok = int(bool(p[mi].mean() < p[mj].mean()) == (di < dj))
                all_ok += ok
                all_n += 1
                if (c.full_masks[t, i] & c.full_masks[t, j]).any():
                    occ_ok += ok
                    occ_n += 1
    res = {
        "order_acc_occluding": float(occ_ok / max(1, occ_n)),
        "occluding_pairs": occ_n,
        "order_acc_all_pairs": float(all_ok / max(1, all_n)),
        "all_pairs": all_n,
        "mae": float(np.mean(mae)),
        "frames": len(items),
        "n_scenes": n,
        "bar": BAR,
        "processor_max_abs_diff": proc_err,
    }
    res["passed"] = bool(res["order_acc_occluding"] >= BAR and occ_n > 0 and proc_err < 1e-3)
    return res


def _training_set(n: int, seed: int) -> dict[str, torch.Tensor]:
    """Frames ([-1, 1]), depth maps, visible masks ``[N,3,64,64]`` (zero-padded), and per
    object pair ``(i, j)`` a target ``+1`` (i nearer) / ``-1`` (j nearer) / ``0`` (not an
    occluding pair with both objects visible) for the ranking loss."""
    rng = np.random.default_rng([seed, 11])
    xs, ds, ms, rk = [], [], [], []
    for c in data.iter_clips("train", n, pan_prob=0.3):
        occ = [_occlusion(c, t) for t in range(c.frames.shape[0])]
        ts = {int(rng.integers(c.frames.shape[0])), int(np.argmax(occ))}
        k = len(c.scene.objects)
        for t in ts:
            xs.append(c.frames[t].copy())  # copies: views kept every clip alive (~10 GB for 20 000 scenes)
            ds.append(c.depth[t].copy())
            m = np.zeros((3, 64, 64), dtype=bool)
            m[:k] = c.masks[t]
            ms.append(m)
            r = np.zeros((3, 3), dtype=np.float32)
            for i in range(k):
                for j in range(k):
                    if i == j or m[i].sum() < MIN_PIXELS or m[j].sum() < MIN_PIXELS:
                        continue
                    if not (c.full_masks[t, i] & c.full_masks[t, j]).any():
                        continue
                    di, dj = float(c.depth[t][m[i]].mean()), float(c.depth[t][m[j]].mean())
                    if di != dj:
                        r[i, j] = 1.0 if di < dj else -1.0
            rk.append(r)
    return {
        "x": data.to_model(np.stack(xs)),
        "depth": torch.from_numpy(np.stack(ds)),
        "masks": torch.from_numpy(np.stack(ms)),
        "rank": torch.from_numpy(np.stack(rk)),
    }


#: The six orders of the RGB channels (the toy world's depth does not depend on colour).
_CHANNEL_ORDERS = torch.tensor([[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]])


def augment(
    x: torch.Tensor, d: torch.Tensor, m: torch.Tensor, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per sample, one of the 8 flips/quarter-turns of the square (applied alike to frame, depth
    map and masks) and one of the 6 orders of the frame's colour channels.  Neither changes the
    depth order of two objects, and together they multiply the distinct training frames by 48."""
    b = len(x)
    k = torch.randint(0, 8, (b,), generator=g)
    order = _CHANNEL_ORDERS[torch.randint(0, 6, (b,), generator=g)]
    x = x[torch.arange(b)[:, None], order]
    xs, ds, ms = x.clone(), d.clone(), m.clone()
    for t in range(1, 8):
        sel = k == t
        if not bool(sel.any()):
            continue
        xt, dt, mt = x[sel], d[sel], m[sel]
        if t >= 4:
            xt, dt, mt = xt.flip(-1), dt.flip(-1), mt.flip(-1)
        r = t % 4
        xs[sel] = torch.rot90(xt, r, (-2, -1))
        ds[sel] = torch.rot90(dt, r, (-2, -1))
        ms[sel] = torch.rot90(mt, r, (-2, -1))
    return xs, ds, ms


def _rank_loss(pred: torch.Tensor, masks: torch.Tensor, rank: torch.Tensor, tau: float = 0.05) -> torch.Tensor:
    """Logistic loss on mean predicted depth of occluding object pairs (nearer -> lower)."""
    mf = masks.float()
    mean = (pred[:, None] * mf).sum((-1, -2)) / mf.sum((-1, -2)).clamp_min(1.0)  # [B,3]
    diff = mean[:, None, :] - mean[:, :, None]  # [B,i,j] = mean_j - mean_i (> 0 if i nearer)
    sel = rank != 0
    if not bool(sel.any()):
        return pred.sum() * 0.0
    return F.softplus(-(diff * rank)[sel] / tau).mean() * tau


def _averaged(model: Any, ema: EMA) -> Any:
    """A copy of ``model`` in eval mode holding ``ema``'s weights."""
    avg = copy.deepcopy(model).eval()
    ema.copy_to(avg)
    return avg


def train(
    out: str | Path = DEFAULT_DIR,
    quick: bool = False,
    seed: int = 0,
    steps: int | None = None,
    max_seconds: float = TRAIN_MINUTES * 60,
    n_scenes: int | None = None,
    threads: int = 1,
) -> dict[str, Any]:
    """Weighted L1 + a logistic ranking loss on the mean predicted depth of occluding object pairs
    (the quality metric, made differentiable), :func:`augment` on every batch; LR schedule on
    ``_util.progress`` (step or time fraction of ``max_seconds``, the larger).  Saves an exponential
    moving average of the weights (``zoo_info.json`` also records the live weights' figures)."""
    set_threads(threads)
    seed_all(seed)
    timer = Timer()
    batch = 8 if quick else TRAIN_BATCH
    n_scenes = n_scenes or (16 if quick else TRAIN_SCENES)
    steps = steps or (3 if quick else TRAIN_STEPS)
    log(f"depth: rendering {n_scenes} scenes")
    ts = _training_set(n_scenes, seed)
    x_all, d_all, m_all, r_all = ts["x"], ts["depth"], ts["masks"], ts["rank"]
    n = len(x_all)
    model = build_depth()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.01)
    g = torch.Generator().manual_seed(seed)
    g_aug = torch.Generator().manual_seed(seed + 1)
    ema = EMA(model, EMA_DECAY)
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
        idx = torch.randint(0, n, (batch,), generator=g)
        x, d, m = augment(x_all[idx], d_all[idx], m_all[idx], g_aug)
        pred = model(pixel_values=x).predicted_depth
        w = 1.0 + 2.0 * (d < 1.0).float()
        loss = (w * (pred - d).abs()).sum() / w.sum() + _rank_loss(pred, m, r_all[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema.update(model, step)
        if step % 50 == 0 or step == steps - 1:
            log(f"depth step {step}/{steps} p {prog:.3f} loss {loss.item():.4f} lr {lr:.2e} t {timer.elapsed():.0f}s")
        if not quick and step % EVAL_EVERY == EVAL_EVERY - 1:
            live = evaluate(model=model, processor=build_processor(), n=150)["order_acc_occluding"]
            avg = evaluate(model=_averaged(model, ema), processor=build_processor(), n=150)["order_acc_occluding"]
            log(f"depth eval@{step + 1} (150 scenes, occluding-pair order): live {live:.3f} ema {avg:.3f}")
            model.train()
    model.eval()
    train_time = timer.elapsed()
    n_eval = 40 if quick else 300
    live_metrics = evaluate(model=model, processor=build_processor(), n=n_eval)
    ema.copy_to(model)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    build_processor().save_pretrained(str(out))
    metrics = evaluate(out, n=n_eval)
    info = {
        "recipe": "depth",
        "quick": quick,
        "seed": seed,
        "steps": done,
        "planned_steps": steps,
        "stopped_early": stopped_early,
        "batch": batch,
        "ema_decay": EMA_DECAY,
        "train_frames": n,
        "train_time_s": round(train_time, 1),
        "threads": threads,
        "metrics": metrics,
        "metrics_live_weights": live_metrics,
    }
    write_info(out, info)
    log(f"depth done: {info}")
    return info
