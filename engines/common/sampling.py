"""Shared diffusion sampling: components, text and VAE I/O, and the DDIM denoising loop.

Used by ``sdedit`` and ``dreamix`` (and any engine that noises its input to a
strength and denoises toward a prompt).  Plain torch/diffusers, no pipeline:

* :func:`load_components` loads VAE, text encoder, tokenizer, UNet and the
  scheduler config of one model role through ``ResolvedModel.from_pretrained``;
* :func:`embed`, :func:`encode`, :func:`decode`: prompt states, frames
  ``uint8 [T,H,W,3]`` <-> scaled latents ``[T,C,h,w]`` (VAE posterior mean);
* :func:`schedule`: the DDIM timesteps of a strength ``s`` in [0, 1]: the last
  ``round(steps*s)`` of ``steps`` (s = 0 runs none and returns the input through
  the VAE; s = 1 starts from pure noise, i.e. plain text-to-image/-video);
* :func:`guided_eps`: classifier-free guidance (negative prompt = unconditional),
  optionally only inside a window of timesteps (:func:`guidance_window`: a guidance
  interval, Kynkäänniemi et al. 2024; outside it the conditional prediction alone);
* :func:`chunked`: frame chunking of a video noise predictor (each chunk of
  frames is denoised on its own and the chunks are concatenated, for outputs
  longer than the model's frame count);
* :func:`denoise`: noise clean latents to the first timestep, then stochastic
  DDIM (``eta``) down to 0.

Heavy libraries (torch, diffusers, transformers) are imported inside the functions that use them,
so that importing this module stays cheap (``recut validate`` imports every engine, and so this).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from engines.common.params import check_interval

__all__ = [
    "Components",
    "chunked",
    "decode",
    "denoise",
    "embed",
    "encode",
    "guidance_window",
    "guided_at",
    "guided_eps",
    "load_components",
    "n_steps",
    "schedule",
    "unguided_problem",
]


@dataclass
class Components:
    vae: Any
    text_encoder: Any
    tokenizer: Any
    unet: Any
    scheduler_config: Any
    dtype: Any

    @property
    def vae_scale(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def multiple(self) -> int:
        """Frame sizes must be multiples of this (VAE factor x UNet downsamplings)."""
        return self.vae_scale * 2 ** (len(self.unet.config.block_out_channels) - 1)


def load_components(model: Any, role: str, unet_cls: Any, device: str = "cpu") -> Components:
    """Load the components of model ``role`` (frozen, eval mode, on ``device``)."""
    from diffusers import AutoencoderKL, DDIMScheduler
    from transformers import CLIPTextModel, CLIPTokenizer

    dtype = model.torch_dtype(device)

    def get(cls: Any, sub: str, **kw: Any) -> Any:
        return model.from_pretrained(cls, role, subfolder=sub, **kw)

    tokenizer = get(CLIPTokenizer, "tokenizer")
    scheduler = get(DDIMScheduler, "scheduler")
    nets = {
        "vae": get(AutoencoderKL, "vae", torch_dtype=dtype),
        "text_encoder": get(CLIPTextModel, "text_encoder", dtype=dtype),
        "unet": get(unet_cls, "unet", torch_dtype=dtype),
    }
    for net in nets.values():
        net.to(device)
        net.eval()
        net.requires_grad_(False)
    if (getattr(model, "options", None) or {}).get("attention_slicing") and hasattr(
        nets["unet"], "set_attention_slice"
    ):
        nets["unet"].set_attention_slice("auto")
    return Components(
        vae=nets["vae"],
        text_encoder=nets["text_encoder"],
        tokenizer=tokenizer,
        unet=nets["unet"],
        scheduler_config=scheduler.config,
        dtype=dtype,
    )


def embed(c: Components, text: str, device: str = "cpu") -> Any:
    """Text-encoder hidden states ``[1, L, D]`` of ``text`` (padded to the tokenizer's max length)."""
    import torch

    tok = c.tokenizer(
        [text],
        padding="max_length",
        max_length=c.tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    ids = tok.input_ids.to(device)
    with torch.no_grad():  # not inference_mode: the result may enter autograd (e.g. null-text optimisation)
        return c.text_encoder(ids)[0].to(c.dtype)


def encode(c: Components, frames: np.ndarray, batch: int, device: str = "cpu") -> Any:
    """uint8 ``[T,H,W,3]`` -> scaled latents ``[T,C,h,w]`` (VAE posterior mean)."""
    import torch

    out = []
    for i in range(0, len(frames), batch):
        x = torch.from_numpy(np.ascontiguousarray(frames[i : i + batch]))
        x = x.permute(0, 3, 1, 2).to(device, c.dtype) / 127.5 - 1.0
        out.append(c.vae.encode(x).latent_dist.mode())
    return torch.cat(out) * c.vae.config.scaling_factor


def decode(c: Components, latents: Any, batch: int) -> np.ndarray:
    """Scaled latents ``[T,C,h,w]`` -> uint8 ``[T,H,W,3]``."""
    out = []
    for i in range(0, latents.shape[0], batch):
        x = c.vae.decode(latents[i : i + batch] / c.vae.config.scaling_factor).sample
        x = ((x.float() / 2 + 0.5).clamp(0, 1) * 255).round().to("cpu")
        out.append(x.permute(0, 2, 3, 1).numpy().astype(np.uint8))
    return np.concatenate(out)


def n_steps(steps: int, strength: float) -> int:
    """Number of denoising steps a strength runs: the last ``round(steps*strength)`` of ``steps``."""
    return max(0, min(steps, round(steps * strength)))


def schedule(scheduler_config: Any, steps: int, strength: float, device: str = "cpu") -> tuple[Any, Any]:
    """A fresh DDIM scheduler set to ``steps`` and the timesteps a strength runs (possibly empty)."""
    from diffusers import DDIMScheduler

    sched = DDIMScheduler.from_config(scheduler_config)
    sched.set_timesteps(steps, device=device)
    start = steps - n_steps(steps, strength)
    return sched, sched.timesteps[start:]


EpsFn = Callable[[Any, Any], Any]


def guidance_window(interval: tuple[float, float] | None, scheduler_config: Any) -> tuple[float, float] | None:
    """The timesteps ``(low, high)`` of a guidance ``interval`` (fractions of the scheduler's
    ``num_train_timesteps``); ``None`` for the whole range (guide at every step)."""
    if interval is None or tuple(interval) == (0.0, 1.0):
        return None
    lo, hi = check_interval(tuple(interval))
    n = int(scheduler_config["num_train_timesteps"])
    return (lo * n, hi * n)


def guided_at(t: Any, window: tuple[float, float] | None) -> bool:
    """Whether the step at timestep ``t`` is guided under ``window`` (:func:`guidance_window`)."""
    return window is None or window[0] <= float(t) <= window[1]


def unguided_problem(
    scheduler_config: Any, steps: int, strength: float, interval: tuple[float, float], guidance: float
) -> str | None:
    """Why guidance inside ``interval`` would never act on a run of ``steps`` at ``strength`` (none of
    the timesteps the scheduler takes falls inside the window), or None. The first timestep can sit far
    below ``strength * T`` (few steps, "leading" spacing), which the params model cannot see."""
    window = guidance_window(interval, scheduler_config)
    if window is None or guidance <= 1.0:
        return None
    _, ts = schedule(scheduler_config, steps, strength)
    taken = [int(t) for t in ts]
    if not taken or any(guided_at(t, window) for t in taken):
        return None
    n = int(scheduler_config["num_train_timesteps"])
    return (
        f"{list(interval)}: the run's timesteps are {taken} of {n}, none inside the interval's "
        f"{window[0]:g}..{window[1]:g}, so no step would be guided; widen it, or raise steps or strength"
    )


def guided_eps(
    unet: Any,
    latents: Any,
    t: Any,
    cond: Any,
    uncond: Any,
    guidance: float,
    window: tuple[float, float] | None = None,
) -> Any:
    """Noise prediction with classifier-free guidance for a batch of latents (``cond`` ``[1,L,D]``
    for all of them or ``[B,L,D]``, one per latent; ``uncond`` ``[1,L,D]`` or None: no guidance;
    ``window`` from :func:`guidance_window`: guide only at timesteps inside it)."""
    import torch

    b = latents.shape[0]
    if not guided_at(t, window):
        uncond = None
    cond = cond if cond.shape[0] == b else cond.repeat(b, 1, 1)  # one prompt for all, or one per latent
    if uncond is None:
        return unet(latents, t, encoder_hidden_states=cond).sample
    x = torch.cat([latents, latents])
    ctx = torch.cat([uncond.repeat(b, 1, 1), cond])
    e_u, e_c = unet(x, t, encoder_hidden_states=ctx).sample.chunk(2)
    return e_u + guidance * (e_c - e_u)


def chunked(eps_fn: EpsFn, chunk: int | None, dim: int = 2) -> EpsFn:
    """Wrap a video noise predictor so it sees at most ``chunk`` frames (axis ``dim``) at a time.

    Each chunk is denoised independently (temporal layers do not cross chunk
    boundaries) and the predictions are concatenated; ``None`` or a chunk at
    least as long as the clip is the plain predictor.
    """
    import torch

    if not chunk:
        return eps_fn

    def run(latents: Any, t: Any) -> Any:
        n = latents.shape[dim]
        if n <= chunk:
            return eps_fn(latents, t)
        return torch.cat([eps_fn(part, t) for part in latents.split(chunk, dim=dim)], dim=dim)

    return run


def denoise(
    sched: Any,
    timesteps: Any,
    latents: Any,
    eps_fn: EpsFn,
    noise: Any,
    strength: float,
    eta: float = 0.0,
    variance_noise: Callable[[], Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Any:
    """Noise clean ``latents`` to ``timesteps[0]`` and run DDIM down to 0.

    1. ``strength >= 1``: start from ``noise * init_noise_sigma`` (the input is
       ignored: text-to-image/-video); otherwise ``add_noise`` at the first
       timestep; no timesteps (strength 0): return ``latents`` unchanged;
    2. each step: ``eps_fn(latents, t)``, then ``sched.step`` with ``eta``;
       ``variance_noise()`` supplies the stochastic DDIM noise when ``eta > 0``
       (the caller decides its shape, e.g. one noise shared by every frame).
    """
    n = len(timesteps)
    if n == 0:
        return latents
    # 1. the start point
    if strength >= 1.0:
        latents = noise * sched.init_noise_sigma
    else:
        latents = sched.add_noise(latents, noise, timesteps[:1])
    # 2. the DDIM steps
    for i, t in enumerate(timesteps, start=1):
        eps = eps_fn(latents, t)
        var = variance_noise() if (eta > 0 and variance_noise is not None) else None
        latents = sched.step(eps, t, latents, eta=eta, variance_noise=var).prev_sample
        if progress is not None:
            progress(i, n)
    return latents
