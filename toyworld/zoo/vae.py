"""Toy VAE: a diffusers ``AutoencoderKL`` for 64x64 RGB toy frames, latents 4x16x16.

Three ``DownEncoderBlock2D`` (block_out_channels (16, 32, 64), two downsamplers ->
factor 4), ``layers_per_block`` 1, 4 latent channels.  Inputs are float
``[B,3,64,64]`` in [-1, 1] (``data.to_model``).  ``config.scaling_factor`` is
``1 / std`` of the posterior means on training frames, so
``vae.encode(x).latent_dist.sample() * vae.config.scaling_factor`` has unit
variance (as in Stable Diffusion).

API::

    load_vae(folder=DEFAULT_DIR) -> AutoencoderKL        # eval mode, float32
    encode(vae, x) -> scaled latents [B,4,16,16]         # mean of the posterior * scaling_factor
    decode(vae, z) -> x in [-1,1] [B,3,64,64]            # z scaled latents
    train(out, quick=False, seed=0) -> info dict
    evaluate(folder, n=256) -> {"psnr_mean": .., "psnr_pooled": .., "n": ..}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from recut.models import REPO_ROOT
from toyworld.zoo import data
from toyworld.zoo._util import Timer, log, lr_at, progress, seed_all, set_threads, write_info

DEFAULT_DIR = REPO_ROOT / "models" / "toy" / "vae"
BAR_PSNR = 28.0
LR = 1.5e-3
#: Wall-time cap (see :func:`train`).
TRAIN_MINUTES = 20


def build_vae() -> Any:
    from diffusers import AutoencoderKL  # local: diffusers takes seconds to import

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 64),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
        scaling_factor=1.0,
    )


def load_vae(folder: str | Path = DEFAULT_DIR) -> Any:
    from diffusers import AutoencoderKL  # local: diffusers takes seconds to import

    return AutoencoderKL.from_pretrained(str(folder)).eval()


@torch.no_grad()
def encode(vae: Any, x: torch.Tensor) -> torch.Tensor:
    return vae.encode(x).latent_dist.mean * vae.config.scaling_factor


@torch.no_grad()
def decode(vae: Any, z: torch.Tensor) -> torch.Tensor:
    return vae.decode(z / vae.config.scaling_factor).sample.clamp(-1, 1)


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@torch.no_grad()
def evaluate(folder: str | Path = DEFAULT_DIR, n: int = 256, vae: Any = None) -> dict[str, Any]:
    """PSNR of the uint8 round trip (encode -> posterior mean -> decode -> uint8) on
    ``n`` held-out frames (one per held-out scene)."""
    vae = vae if vae is not None else load_vae(folder)
    vae.eval()
    b = data.frame_batch("heldout", n, seed=1)
    recs = []
    for i in range(0, n, 64):
        x = b["frames"][i : i + 64]
        recs.append(data.to_uint8(vae.decode(vae.encode(x).latent_dist.mean).sample))
    rec = np.concatenate(recs)
    per = [psnr_uint8(rec[i], b["uint8"][i]) for i in range(n)]
    res = {
        "psnr_mean": float(np.mean(per)),
        "psnr_pooled": float(psnr_uint8(rec, b["uint8"])),
        "psnr_min": float(np.min(per)),
        "n": n,
        "bar": BAR_PSNR,
    }
    res["passed"] = bool(res["psnr_mean"] >= BAR_PSNR)
    return res


def train(
    out: str | Path = DEFAULT_DIR,
    quick: bool = False,
    seed: int = 0,
    steps: int | None = None,
    max_seconds: float = TRAIN_MINUTES * 60,
    threads: int = 1,
) -> dict[str, Any]:
    """Train on random 32x32 crops (batch 32; the model is fully convolutional apart from
    the mid-block attention) for the first 85% of the steps, then on full 64x64 frames
    (batch 8).  The LR schedule (warmup + cosine) follows ``progress``: the larger of the
    step and the time fraction of ``max_seconds`` (see ``_util.progress``), so on a slow or
    shared machine it anneals on time and the run stops at the cap."""
    set_threads(threads)
    seed_all(seed)
    timer = Timer()
    n_scenes, fps, batch = (32, 2, 8) if quick else (6000, 2, 32)
    steps = steps or (3 if quick else 4000)
    full_from = 0.85  # progress at which training switches to full frames
    log(f"vae: rendering {n_scenes} scenes")
    d = data.frame_batch("train", n_scenes, frames_per_scene=fps, seed=seed, pan_prob=0.35)
    frames = d["frames"]
    n = frames.shape[0]
    vae = build_vae()
    opt = torch.optim.AdamW(vae.parameters(), lr=LR, weight_decay=1e-4)
    g = torch.Generator().manual_seed(seed)
    vae.train()
    stopped_early = False
    done = 0
    for step in range(steps):
        prog = progress(step, steps, timer, max_seconds)
        if prog >= 1.0:
            stopped_early = True
            break
        done = step + 1
        lr = lr_at(prog, LR)
        for pg in opt.param_groups:
            pg["lr"] = lr
        if prog < full_from:
            idx = torch.randint(0, n, (batch,), generator=g)
            oy, ox = (int(v) for v in torch.randint(0, 33, (2,), generator=g))
            x = frames[idx][:, :, oy : oy + 32, ox : ox + 32]
        else:
            idx = torch.randint(0, n, (8,), generator=g)
            x = frames[idx]
        if not quick and step % 2 == 1:  # flips: cheap augmentation
            x = x.flip(-1)
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=g)
        rec = vae.decode(z).sample
        l1 = (rec - x).abs().mean()
        l2 = F.mse_loss(rec, x)
        kl = post.kl().mean() / x[0].numel()
        loss = l1 + l2 + 1e-5 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            psnr = 10 * np.log10(4.0 / max(l2.item(), 1e-12))
            log(
                f"vae step {step}/{steps} p {prog:.3f} loss {loss.item():.4f} l1 {l1.item():.4f} "
                f"psnr~{psnr:.2f} kl {kl.item():.3f} lr {lr:.2e} t {timer.elapsed():.0f}s"
            )
    vae.eval()
    with torch.no_grad():
        zs = torch.cat([vae.encode(frames[i : i + 64]).latent_dist.mean for i in range(0, min(n, 1024), 64)])
    sf = float(1.0 / zs.std())
    vae.register_to_config(scaling_factor=sf)
    train_time = timer.elapsed()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vae.save_pretrained(str(out), safe_serialization=True)
    metrics = evaluate(out, n=32 if quick else 256)
    info = {
        "recipe": "vae",
        "quick": quick,
        "seed": seed,
        "steps": done,
        "planned_steps": steps,
        "stopped_early": stopped_early,
        "batch": f"{batch} x 32x32 crops, then 8 x 64x64 from progress {full_from}",
        "train_frames": n,
        "scaling_factor": sf,
        "train_time_s": round(train_time, 1),
        "threads": threads,
        "metrics": metrics,
    }
    write_info(out, info)
    log(f"vae done: {info}")
    return info
