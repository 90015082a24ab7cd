"""A generic epsilon-prediction finetune loop and the trainable-parameter delta.

Video-P2P's initialisation tuning, Tune-A-Video's one-shot tuning and Dreamix's
mixed video/frame finetuning are the same loop: pick parameters by name,
noise clean latents at random timesteps, regress the noise, step Adam.  Only
the parameters that were trained are saved (safetensors), never a full UNet.

API (stable; additive changes only):

``select_parameters(model, patterns) -> dict[str, torch.nn.Parameter]``
    Parameters whose dotted name matches any pattern.  A pattern is a
    substring (``"attn1.to_q"``) or, with a leading ``re:``, a regular
    expression (``"re:attn_temp\\.(to_q|to_out)"``).  Raises ``ValueError``
    quoting the pattern when one matches nothing.

``FinetuneConfig(steps=500, lr=3e-5, seed=0, max_grad_norm=1.0, warmup_steps=0, weight_decay=0.0,
adam_betas=(0.9, 0.999), adam_eps=1e-8)``
    The optimisation settings (constant learning rate after an optional linear warm-up).

``finetune(model, params, data, scheduler, config, forward=None, progress=None) -> FinetuneResult``
    1. freezes every parameter of ``model`` except ``params`` (the dict from
       ``select_parameters``);
    2. each step takes ``(latents, cond)`` from ``data``: either a fixed tuple
       or a callable ``data(step, generator) -> (latents, cond)`` (for mixed
       batches); ``latents`` is any shape ``[B, ...]`` (``[B,C,h,w]`` images,
       ``[B,C,F,h,w]`` videos) and ``cond`` the text states ``[B,L,D]``;
    3. draws noise and one timestep per sample from a ``torch.Generator``
       seeded with ``config.seed`` (runs are reproducible), noises with
       ``scheduler.add_noise`` and regresses the target
       (``epsilon``, or the velocity for ``v_prediction`` schedulers) with MSE;
    4. clips gradients and steps AdamW.
    ``forward(model, noisy, timesteps, cond) -> prediction`` defaults to
    ``model(noisy, timesteps, encoder_hidden_states=cond).sample``.
    Returns the per-step losses and the trained names; the model is left in
    eval mode with ``requires_grad`` off everywhere.

``save_delta(params, path, metadata=None)`` / ``load_delta(model, path, strict=True) -> list[str]``
    Write the current values of the trained parameters (the "delta": only
    the parameters that changed, by name) as safetensors with string
    metadata; load them back into a model with the same architecture.
    ``strict`` raises ``KeyError`` naming a stored tensor the model lacks and
    ``ValueError`` on a shape mismatch.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from engines.common.patterns import pattern_matcher

__all__ = [
    "FinetuneConfig",
    "FinetuneResult",
    "finetune",
    "load_delta",
    "save_delta",
    "select_parameters",
]

Batch = tuple[torch.Tensor, torch.Tensor]


def select_parameters(model: torch.nn.Module, patterns: list[str] | tuple[str, ...]) -> dict[str, torch.nn.Parameter]:
    """Named parameters of ``model`` matching any of ``patterns`` (substring or ``re:<regex>``)."""
    if not patterns:
        raise ValueError("no trainable parameter patterns given")
    named = dict(model.named_parameters())
    out: dict[str, torch.nn.Parameter] = {}
    for pat in patterns:
        match = pattern_matcher(pat)
        hits = [n for n in named if match(n)]
        if not hits:
            raise ValueError(f"trainable pattern {pat!r} matches no parameter of {type(model).__name__}")
        for n in hits:
            out[n] = named[n]
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class FinetuneConfig:
    steps: int = 500
    lr: float = 3e-5
    seed: int = 0
    max_grad_norm: float = 1.0
    warmup_steps: int = 0
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8


@dataclass
class FinetuneResult:
    losses: list[float] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    @property
    def first_loss(self) -> float:
        return self.losses[0] if self.losses else float("nan")

    @property
    def last_loss(self) -> float:
        return self.losses[-1] if self.losses else float("nan")


def _default_forward(model: Any, noisy: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    return model(noisy, t, encoder_hidden_states=cond).sample


def prediction_target(scheduler: Any, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """What a UNet trained under ``scheduler`` predicts for ``x0`` noised with ``noise`` at ``t``:
    the noise (``epsilon``) or the velocity ``sqrt(a) * noise - sqrt(1 - a) * x0`` (``v_prediction``)."""
    kind = getattr(scheduler.config, "prediction_type", "epsilon")
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(x0, noise, t)
    raise ValueError(f"scheduler prediction_type must be 'epsilon' or 'v_prediction', got {kind!r}")


def finetune(
    model: torch.nn.Module,
    params: dict[str, torch.nn.Parameter],
    data: Batch | Callable[[int, torch.Generator], Batch],
    scheduler: Any,
    config: FinetuneConfig,
    forward: Callable[[Any, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> FinetuneResult:
    """Train ``params`` of ``model`` to predict the noise of ``data``; see the module docstring."""
    fwd = forward or _default_forward
    n_train = int(scheduler.config.num_train_timesteps)
    gen = torch.Generator(device="cpu").manual_seed(int(config.seed))

    # 1. freeze everything but the selected parameters
    model.requires_grad_(False)
    trainable = list(params.values())
    for p in trainable:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(
        trainable, lr=config.lr, betas=config.adam_betas, eps=config.adam_eps, weight_decay=config.weight_decay
    )

    def lr_at(step: int) -> float:
        if config.warmup_steps > 0 and step < config.warmup_steps:
            return config.lr * (step + 1) / config.warmup_steps
        return config.lr

    result = FinetuneResult(names=list(params))
    model.train()
    try:
        for step in range(config.steps):
            # 2. the batch
            latents, cond = data(step, gen) if callable(data) else data
            dev = latents.device
            # 3. noise at one random timestep per sample
            noise = torch.randn(latents.shape, generator=gen, dtype=torch.float32).to(dev, latents.dtype)
            t = torch.randint(0, n_train, (latents.shape[0],), generator=gen).to(dev)
            noisy = scheduler.add_noise(latents, noise, t)
            target = prediction_target(scheduler, latents, noise, t)
            pred = fwd(model, noisy, t, cond)
            loss = torch.nn.functional.mse_loss(pred.float(), target.float())
            # 4. one AdamW step on the trainable parameters
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if config.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
            opt.step()
            result.losses.append(float(loss.detach()))
            if progress is not None:
                progress(step + 1, config.steps)
    finally:
        model.eval()
        model.requires_grad_(False)
    return result


def save_delta(params: dict[str, torch.nn.Parameter], path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write the trained parameters (by name) to ``path`` as safetensors."""
    tensors = {n: p.detach().to("cpu").contiguous().clone() for n, p in params.items()}
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    path = Path(path)
    save_file(tensors, str(path), metadata=meta)
    return path


def load_delta(model: torch.nn.Module, path: str | Path, strict: bool = True) -> list[str]:
    """Copy the tensors of a :func:`save_delta` file into ``model``; returns the names loaded."""
    tensors = load_file(str(path))
    named = dict(model.named_parameters())
    loaded: list[str] = []
    with torch.no_grad():
        for n, t in tensors.items():
            p = named.get(n)
            if p is None:
                if strict:
                    raise KeyError(f"{path}: stored parameter {n!r} is not in {type(model).__name__}")
                continue
            if tuple(p.shape) != tuple(t.shape):
                raise ValueError(f"{path}: parameter {n!r} has shape {tuple(t.shape)}, the model {tuple(p.shape)}")
            p.copy_(t.to(p.device, p.dtype))
            loaded.append(n)
    return loaded


def delta_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata stored by :func:`save_delta`."""
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})
