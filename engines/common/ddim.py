"""Deterministic DDIM (eta = 0): the sampling step, its inverse, inversion and sampling loops.

Written against a diffusers scheduler's ``alphas_cumprod``/``final_alpha_cumprod``
and ``num_train_timesteps`` so that inversion and sampling use exactly the same
formulas (null-text inversion depends on that).  ``eps_fn(latents, t) -> eps``
is any noise predictor (a UNet with or without guidance, image or T2S).

* :func:`ddim_step`: ``x_t -> x_{t-Δ}`` given the predicted noise.
* :func:`ddim_inverse_step`: ``x_{t-Δ} -> x_t`` (the noise predicted at ``t``
  from ``x_{t-Δ}``; the usual approximation of DDIM inversion).
* :func:`ddim_invert`: the latent trajectory ``[z*_0, z*_1, ..., z*_T]``.
* :func:`ddim_sample`: from ``z_T`` down to ``z_0`` with a per-step callback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

EpsFn = Callable[[torch.Tensor, int], torch.Tensor]

__all__ = ["ddim_inverse_step", "ddim_invert", "ddim_sample", "ddim_step", "ddim_timesteps"]


def ddim_timesteps(scheduler: Any, steps: int) -> list[int]:
    """The descending DDIM timesteps of ``steps`` steps (the scheduler's own spacing)."""
    scheduler.set_timesteps(steps)
    return [int(t) for t in scheduler.timesteps]


def _alpha(scheduler: Any, t: int) -> torch.Tensor:
    return scheduler.alphas_cumprod[t] if t >= 0 else scheduler.final_alpha_cumprod


def _stride(scheduler: Any, steps: int) -> int:
    return int(scheduler.config.num_train_timesteps) // steps


def ddim_step(scheduler: Any, eps: torch.Tensor, t: int, x: torch.Tensor, steps: int) -> torch.Tensor:
    """One deterministic DDIM step from timestep ``t`` to ``t - num_train/steps``."""
    a_t = _alpha(scheduler, t).to(x.device, torch.float32)
    a_prev = _alpha(scheduler, t - _stride(scheduler, steps)).to(x.device, torch.float32)
    x32, e32 = x.float(), eps.float()
    x0 = (x32 - (1 - a_t).sqrt() * e32) / a_t.sqrt()
    return (a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * e32).to(x.dtype)


def ddim_inverse_step(scheduler: Any, eps: torch.Tensor, t: int, x: torch.Tensor, steps: int) -> torch.Tensor:
    """Inverse DDIM step from ``t - num_train/steps`` up to ``t`` (``eps`` predicted at ``t``)."""
    a_from = _alpha(scheduler, t - _stride(scheduler, steps)).to(x.device, torch.float32)
    a_to = _alpha(scheduler, t).to(x.device, torch.float32)
    x32, e32 = x.float(), eps.float()
    x0 = (x32 - (1 - a_from).sqrt() * e32) / a_from.sqrt()
    return (a_to.sqrt() * x0 + (1 - a_to).sqrt() * e32).to(x.dtype)


@torch.no_grad()
def ddim_invert(
    eps_fn: EpsFn,
    scheduler: Any,
    z0: torch.Tensor,
    steps: int,
    progress: Callable[[int, int], None] | None = None,
) -> list[torch.Tensor]:
    """DDIM inversion of clean latents ``z0``: the trajectory ``[z*_0, ..., z*_T]`` (``steps + 1`` entries)."""
    timesteps = ddim_timesteps(scheduler, steps)[::-1]  # ascending
    traj = [z0]
    x = z0
    for i, t in enumerate(timesteps, start=1):
        x = ddim_inverse_step(scheduler, eps_fn(x, t), t, x, steps)
        traj.append(x)
        if progress is not None:
            progress(i, steps)
    return traj


@torch.no_grad()
def ddim_sample(
    eps_fn: Callable[[torch.Tensor, int, int], torch.Tensor],
    scheduler: Any,
    z_t: torch.Tensor,
    steps: int,
    callback: Callable[[int, int, torch.Tensor], torch.Tensor | None] | None = None,
) -> torch.Tensor:
    """Deterministic DDIM sampling from ``z_T``; ``eps_fn(x, t, i)``; ``callback(i, t, x) -> x or None``."""
    x = z_t
    for i, t in enumerate(ddim_timesteps(scheduler, steps)):
        x = ddim_step(scheduler, eps_fn(x, t, i), t, x, steps)
        if callback is not None:
            y = callback(i, t, x)
            if y is not None:
                x = y
    return x
