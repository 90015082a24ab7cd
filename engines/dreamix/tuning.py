"""Dreamix's mixed finetuning on top of the generic loop of :mod:`engines.common.finetune`.

The loop, the parameter selection and the safetensors delta are the shared ones
(``finetune``, ``select_parameters``, ``save_delta``/``load_delta``); Dreamix
adds, here, without changing that module:

* the **mixed objective**: each step is a *video* step with probability
  ``alpha`` (the clip ``[1,C,F,h,w]`` through the full model) and a *frames*
  step otherwise (the frames ``[N,C,1,h,w]`` as an unordered set, one
  timestep each, inside :func:`engines.common.temporal.frames_mode`: temporal
  attention masked to the diagonal, temporal convolutions bypassed).  In
  expectation the loss is ``alpha * L_video + (1 - alpha) * L_frames``;
  ``alpha`` 1 or 0 never draws.  The draws come from the loop's seeded
  generator, so a finetune is reproducible;
* **LoRA** as the memory option: rank-``r`` adapters (``lora_down``/``lora_up``
  submodules plus a forward hook) on every attention projection
  (``to_q``, ``to_k``, ``to_v``, ``to_out.0``); ``lora_up`` starts at zero, so
  step 0 is the base model.  Only the adapters are trained and stored.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engines.common.finetune import (
    FinetuneConfig,
    delta_metadata,
    finetune,
    load_delta,
    save_delta,
    select_parameters,
)
from engines.common.temporal import frames_mode

__all__ = ["LORA_TARGETS", "MixedObjective", "inject_lora", "load_tuned", "run_finetune"]

#: Linear layers that get LoRA adapters (attention projections, spatial and temporal).
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")


def _lora_hook(module: torch.nn.Module, inputs: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
    return output + module.lora_scale * module.lora_up(module.lora_down(inputs[0]))  # type: ignore[operator]


def inject_lora(unet: torch.nn.Module, rank: int, alpha: float | None = None) -> list[str]:
    """Add LoRA adapters to every attention projection of ``unet`` (in place); returns the adapted names."""
    names = []
    for name, mod in list(unet.named_modules()):
        if not isinstance(mod, torch.nn.Linear) or not any(name.endswith(t) for t in LORA_TARGETS):
            continue
        r = min(rank, mod.in_features, mod.out_features)
        mod.add_module("lora_down", torch.nn.Linear(mod.in_features, r, bias=False))
        mod.add_module("lora_up", torch.nn.Linear(r, mod.out_features, bias=False))
        g = torch.Generator().manual_seed(len(names))
        with torch.no_grad():
            mod.lora_down.weight.copy_(torch.randn(mod.lora_down.weight.shape, generator=g) / r)
            mod.lora_up.weight.zero_()
        mod.lora_down.to(mod.weight.device, mod.weight.dtype)
        mod.lora_up.to(mod.weight.device, mod.weight.dtype)
        mod.lora_scale = float(alpha if alpha is not None else r) / r
        mod.register_forward_hook(_lora_hook)
        names.append(name)
    if not names:
        raise ValueError(f"{type(unet).__name__} has no attention projections ({', '.join(LORA_TARGETS)}) for LoRA")
    return names


@dataclass
class MixedObjective:
    """``data``/``forward`` callables of the generic loop that mix the video and frames objectives."""

    video: torch.Tensor  # [1, C, F, h, w]
    frames: torch.Tensor  # [N, C, 1, h, w]
    cond: torch.Tensor  # [1, L, D]
    alpha: float
    frames_step: bool = False
    video_steps: int = 0
    frames_steps: int = 0

    def data(self, step: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if self.alpha >= 1.0:
            use_video = True
        elif self.alpha <= 0.0:
            use_video = False
        else:
            use_video = bool(torch.rand((), generator=gen).item() < self.alpha)
        self.frames_step = not use_video
        if use_video:
            self.video_steps += 1
            return self.video, self.cond
        self.frames_steps += 1
        return self.frames, self.cond.expand(self.frames.shape[0], -1, -1)

    def forward(self, model: Any, noisy: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if self.frames_step:
            with frames_mode(model):
                return model(noisy, t, encoder_hidden_states=cond).sample
        return model(noisy, t, encoder_hidden_states=cond).sample


def run_finetune(
    base_unet: torch.nn.Module,
    scheduler: Any,
    objective: MixedObjective,
    steps: int,
    lr: float,
    seed: int,
    method: str,
    rank: int,
    out_file: Path,
    progress: Callable[[int, int], None] | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Finetune a copy of ``base_unet`` (the resident one stays untouched); write the delta to ``out_file``.

    1. copy the UNet and pick the trainable parameters (every weight, or LoRA adapters);
    2. run the shared loop with the mixed objective;
    3. save the trained parameters (safetensors) with the method in the metadata.
    """
    # 1. trainable copy
    unet = copy.deepcopy(base_unet)
    if method == "lora":
        inject_lora(unet, rank)
        params = select_parameters(unet, ["lora_down", "lora_up"])
    else:
        params = select_parameters(unet, ["re:."])
    # 2. the loop
    cfg = FinetuneConfig(steps=steps, lr=lr, seed=seed)
    # dropout (the UNet3D's temporal convs have p=0.1) draws from torch's global RNG: seed it too,
    # in a forked RNG state, so a finetune is reproducible and leaves the caller's RNG alone
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        res = finetune(unet, params, objective.data, scheduler, cfg, forward=objective.forward, progress=progress)
    # 3. the delta
    meta = {"method": method, "rank": rank, **(metadata or {})}
    save_delta(params, out_file, meta)
    return {
        "losses": res.losses,
        "trained": len(params),
        "trained_numel": int(sum(p.numel() for p in params.values())),
        "video_steps": objective.video_steps,
        "frames_steps": objective.frames_steps,
    }


def load_tuned(base_unet: torch.nn.Module, delta_file: Path) -> torch.nn.Module:
    """A copy of ``base_unet`` with a :func:`run_finetune` delta applied (LoRA adapters re-created)."""
    meta = delta_metadata(delta_file)
    unet = copy.deepcopy(base_unet)
    if meta.get("method") == "lora":
        inject_lora(unet, int(meta.get("rank", "4")))
    load_delta(unet, delta_file, strict=True)
    unet.eval()
    unet.requires_grad_(False)
    return unet
