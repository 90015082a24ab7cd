"""Null-text optimisation (Mokady et al., 2023) for clips: one unconditional embedding per timestep.

DDIM inversion is run without guidance, so sampling the inverted latents back
with classifier-free guidance drifts away from the input.  Null-text
optimisation fixes that by tuning, step by step, the unconditional ("null")
text embedding so that the guided DDIM step from the current latent lands on
the inversion trajectory:

1. start from ``z*_T`` and the initial null embedding ``∅`` (the embedding of
   the empty prompt);
2. at step ``i`` (timestep ``t``), with the conditional noise fixed, run up to
   ``inner_steps`` Adam updates of ``∅_t`` on
   ``|| ddim_step(ε(z, t, ∅_t) + w (ε(z, t, c) - ε(z, t, ∅_t))) - z*_{t-1} ||²``,
   learning rate ``lr * (1 - decay * i / steps)``, stopping early once the loss
   is below ``epsilon + i * 2e-5`` (the paper's schedule);
3. keep ``∅_t``, take the guided step with it, and continue from the result
   (not from ``z*_{t-1}``), so the errors of earlier steps are corrected.

``per_frame=False`` (Video-P2P's shared null-text) tunes one embedding
``[1, L, D]`` per step for all frames; ``per_frame=True`` (the ablation) one
``[1, F, L, D]`` per step, one per frame.  The noise predictor is
``eps_fn(latents [1,C,F,h,w], t, text [1,L,D] or [1,F,L,D]) -> eps``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from engines.common.ddim import ddim_step, ddim_timesteps

TextEpsFn = Callable[[torch.Tensor, int, torch.Tensor], torch.Tensor]

__all__ = ["NullTextConfig", "NullTextResult", "guided_reconstruction", "optimize_null_text"]


@dataclass(frozen=True)
class NullTextConfig:
    inner_steps: int = 10
    lr: float = 1e-2
    #: The learning rate falls linearly by this fraction over the steps (the paper: 0.5 over 50 steps).
    lr_decay: float = 0.5
    epsilon: float = 1e-5
    per_frame: bool = False


@dataclass
class NullTextResult:
    #: ``[steps, L, D]`` (shared) or ``[steps, F, L, D]`` (per frame), in sampling order (t = T first).
    embeddings: torch.Tensor
    losses: list[float] = field(default_factory=list)
    inner_steps_used: list[int] = field(default_factory=list)


def _guided(eps_fn: TextEpsFn, x: torch.Tensor, t: int, cond: torch.Tensor, uncond: torch.Tensor, w: float):
    e_u = eps_fn(x, t, uncond)
    e_c = eps_fn(x, t, cond)
    return e_u + w * (e_c - e_u)


def optimize_null_text(
    eps_fn: TextEpsFn,
    scheduler: object,
    trajectory: Sequence[torch.Tensor],
    cond: torch.Tensor,
    uncond: torch.Tensor,
    guidance: float,
    config: NullTextConfig,
    progress: Callable[[int, int], None] | None = None,
) -> NullTextResult:
    """Optimise the null embedding along ``trajectory`` (``[z*_0, ..., z*_T]``); see the module docstring."""
    steps = len(trajectory) - 1
    timesteps = ddim_timesteps(scheduler, steps)
    num_frames = int(trajectory[0].shape[2])
    null = uncond.detach().clone()
    if config.per_frame:
        null = null[:, None].repeat(1, num_frames, 1, 1)  # [1, F, L, D]
    x = trajectory[-1]
    out: list[torch.Tensor] = []
    result = NullTextResult(embeddings=torch.empty(0))
    for i, t in enumerate(timesteps):
        target = trajectory[-2 - i]
        # 1. the conditional noise does not depend on the null embedding
        with torch.no_grad():
            e_c = eps_fn(x, t, cond)
        # 2. inner Adam loop on this step's null embedding
        null = null.detach().clone().requires_grad_(True)
        opt = torch.optim.Adam([null], lr=config.lr * (1.0 - config.lr_decay * i / steps))
        used, loss_value = 0, float("nan")
        for _ in range(config.inner_steps):
            e_u = eps_fn(x, t, null)
            rec = ddim_step(scheduler, e_u + guidance * (e_c - e_u), t, x, steps)
            loss = torch.nn.functional.mse_loss(rec.float(), target.float())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            used += 1
            loss_value = float(loss.detach())
            if loss_value < config.epsilon + i * 2e-5:
                break
        null = null.detach()
        out.append(null[0].clone())
        result.losses.append(loss_value)
        result.inner_steps_used.append(used)
        # 3. continue from the guided step with the optimised embedding
        with torch.no_grad():
            e_u = eps_fn(x, t, null)
            x = ddim_step(scheduler, e_u + guidance * (e_c - e_u), t, x, steps)
        if progress is not None:
            progress(i + 1, steps)
    result.embeddings = torch.stack(out)
    return result


@torch.no_grad()
def guided_reconstruction(
    eps_fn: TextEpsFn,
    scheduler: object,
    z_t: torch.Tensor,
    steps: int,
    cond: torch.Tensor,
    uncond: torch.Tensor,
    guidance: float,
) -> torch.Tensor:
    """Guided DDIM sampling from ``z_T``; ``uncond`` is one embedding ``[1,L,D]`` or one per step
    (``[steps, L, D]`` / ``[steps, F, L, D]`` from :func:`optimize_null_text`)."""
    x = z_t
    per_step = uncond.shape[0] == steps and steps > 1
    for i, t in enumerate(ddim_timesteps(scheduler, steps)):
        u = uncond[i : i + 1] if per_step else uncond
        x = ddim_step(scheduler, _guided(eps_fn, x, t, cond, u, guidance), t, x, steps)
    return x
