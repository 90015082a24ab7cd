"""Gen-1 customization (Sec. 3.4): finetune on a few images of a subject.

Each batch holds one subject image (captioned by ``prompt``) and, when regularization data is given,
one frame of it (captioned by ``regularization_prompt``), so half of the batch keeps the model close to
its own training data. Every image is a one-frame clip with its own structure (the same representation
as the spec's ``structure``) at a random level t_s, exactly as the model was trained.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from diffusers import DDPMScheduler

from engines.common import sampling
from engines.common.finetune import FinetuneConfig, FinetuneResult, finetune, select_parameters
from engines.common.structure import T_S_MAX
from engines.gen1.sampler import structure_input
from recut import video


def _frames(paths: list[str], size: int) -> np.ndarray:
    """uint8 ``[N, size, size, 3]``: every image, and every frame of every video, centre-cropped."""
    out = []
    for p in paths:
        try:
            frames = video.read_image(p)[None]
        except video.MediaError:
            frames = video.read_video(p)[0]
        out.append(video.fit_frames(frames, size, size, "crop"))
    return np.concatenate(out)


def _prepared(g: Any, frames: np.ndarray, maps_of: Callable[[np.ndarray], np.ndarray]) -> list[Any]:
    """Per image: ``(latents [1, C, 1, h, w], structure channels at every level [L, C + 4, 1, h, w])``."""
    c = g.base
    out = []
    for f in frames:
        maps = maps_of(f[None])
        with torch.no_grad():
            lat = sampling.encode(c, f[None], batch=1).permute(1, 0, 2, 3)[None]
        levels = torch.cat([structure_input(c, maps, k) for k in range(T_S_MAX + 1)])
        out.append((lat, levels))
    return out


def customize(
    g: Any,
    maps_of: Callable[[np.ndarray], np.ndarray],
    params: dict[str, Any],
    images: list[str],
    regularization: list[str],
    seed: int,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Any, dict[str, torch.nn.Parameter], FinetuneResult]:
    """A tuned copy of ``g``'s UNet: ``(unet, trained parameters, losses)``; ``maps_of(frames)`` gives the
    structure maps of frames, as the extract stage computes them."""
    c = g.base
    size = int(c.unet.config.sample_size) * c.vae_scale
    subject = _prepared(g, _frames(images, size), maps_of)
    regular = _prepared(g, _frames(regularization, size), maps_of) if regularization else []
    cond_s = sampling.embed(c, params["prompt"])
    cond_r = sampling.embed(c, params.get("regularization_prompt") or "")
    unet = copy.deepcopy(c.unet)
    trained = select_parameters(unet, params["trainable"])
    batch_structure: list[torch.Tensor] = []

    def data(step: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        picks = [(subject, cond_s)] + ([(regular, cond_r)] if regular else [])
        lats, structs, conds = [], [], []
        for pool, cond in picks:
            lat, levels = pool[int(torch.randint(0, len(pool), (1,), generator=gen))]
            ts = int(torch.randint(0, T_S_MAX + 1, (1,), generator=gen))
            lats.append(lat)
            structs.append(levels[ts : ts + 1])
            conds.append(cond)
        batch_structure[:] = [torch.cat(structs)]
        return torch.cat(lats), torch.cat(conds)

    def forward(model: Any, noisy: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = torch.cat([noisy, batch_structure[0].to(noisy.dtype)], dim=1)
        return model(x, t, encoder_hidden_states=cond).sample

    sched = DDPMScheduler.from_config(c.scheduler_config)
    config = FinetuneConfig(steps=int(params["steps"]), lr=float(params["lr"]), seed=seed)
    result = finetune(unet, trained, data, sched, config, forward=forward, progress=progress)
    return unet, trained, result
