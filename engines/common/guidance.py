"""Content and temporal guidance of a video UNet that can also run as an image model (Gen-1, Sec. 3.3).

One network runs as the video model θ and, with its temporal layers off (:func:`frames_mode`), as the
per-frame image model π. With ``cfg_m = ε_m(z, ∅) + ω (ε_m(z, c) − ε_m(z, ∅))`` for each mode:

    ε̃ = cfg_π + ω_t (cfg_θ − cfg_π)

* ω_t = 1 is the plain video model with classifier-free guidance; ω_t > 1 extrapolates away from the
  image model, toward more temporal consistency; ω_t = 0 is exactly the image model.
* ω = 1 is exactly the unguided (conditional) prediction of each mode.

Only the predictions a setting needs are computed (ω_t ∈ {0, 1} skips one mode, ω = 1 skips the
unconditional passes), so those settings equal the plain models, not approximately.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from engines.common.temporal import frames_mode

#: ``unet_fn(latents, t, context) -> prediction`` on a batch ``[B, C, T, h, w]``.
UNetFn = Callable[[torch.Tensor, Any, torch.Tensor], torch.Tensor]


def needs(omega: float, omega_t: float) -> tuple[bool, bool, bool]:
    """``(video mode, image mode, unconditional)``: which predictions ``(ω, ω_t)`` combine."""
    return omega_t != 0.0, omega_t != 1.0, omega != 1.0


def content_temporal_eps(
    unet: Any,
    unet_fn: UNetFn,
    latents: torch.Tensor,
    t: Any,
    cond: torch.Tensor,
    uncond: torch.Tensor,
    omega: float,
    omega_t: float,
) -> torch.Tensor:
    """The guided prediction ε̃ for one clip batch (``cond``/``uncond``: contexts ``[B, L, D]``)."""
    video, image, unconditional = needs(omega, omega_t)

    def cfg() -> torch.Tensor:
        if not unconditional:
            return unet_fn(latents, t, cond)
        if cond.shape[1:] == uncond.shape[1:]:
            e_u, e_c = unet_fn(torch.cat([latents, latents]), t, torch.cat([uncond, cond])).chunk(2)
        else:  # e.g. image-embedding tokens against an empty prompt's states: two passes
            e_u, e_c = unet_fn(latents, t, uncond), unet_fn(latents, t, cond)
        return e_u + omega * (e_c - e_u)

    e_video = cfg() if video else None
    e_image = None
    if image:
        with frames_mode(unet):
            e_image = cfg()
    if e_image is None:
        return e_video  # type: ignore[return-value]
    if e_video is None:
        return e_image
    return e_image + omega_t * (e_video - e_image)
