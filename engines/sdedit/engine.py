"""SDEdit (Meng et al., "SDEdit: Guided Image Synthesis and Editing with
Stochastic Differential Equations", ICLR 2022) as a video-editing baseline.

The input frames are encoded with the VAE, noised to an intermediate DDIM
timestep chosen by ``strength`` and denoised toward the target prompt with
classifier-free guidance (the negative prompt is the unconditional text).

* ``variant: image``: a Stable-Diffusion-1.5-layout UNet2D edits every frame
  independently, with the *same* seeded noise for every frame (the usual
  per-frame baseline; flicker is expected).
* ``variant: video``: a ModelScope-layout UNet3DConditionModel denoises the
  whole clip as one latent ``[1, C, T, h, w]``.

Everything runs through the components directly (no diffusers pipeline), so
the schedule, the noise and the progress reporting are explicit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from engines.common.stages import EVALUATE, PREPROCESS, evaluate, preprocess
from engines.sdedit.params import SDEditParams
from recut import video
from recut.engine import Engine, Stage, StageContext

SAMPLE = Stage(
    name="sample",
    kind="sample",
    version="1",
    reads=(
        "params.strength",
        "params.steps",
        "params.guidance_scale",
        "params.eta",
        "params.variant",
        "edit.prompt",
        "edit.negative_prompt",
        "model",
        "seed",
    ),
    after=("preprocess",),
    options=("params.frame_batch",),
    per_edit=True,
    uses_model=True,
    description="Encode the frames, noise them to the strength's DDIM timestep, denoise toward "
    "the prompt with classifier-free guidance, decode; frames.npy.",
)

#: Model role of each variant (see recut.models profiles).
ROLES = {"image": "image", "video": "video"}


@dataclass
class _Components:
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


def n_steps(steps: int, strength: float) -> int:
    """Number of denoising steps SDEdit runs: the last round(steps*strength)."""
    return max(0, min(steps, round(steps * strength)))


class SDEditEngine(Engine):
    name = "sdedit"
    description = (
        "SDEdit baseline: noise the input to an intermediate timestep and denoise toward the "
        "prompt; per frame with an SD-1.5 UNet (variant image) or over the clip with a "
        "ModelScope UNet3D (variant video)."
    )
    params_model = SDEditParams
    stages = (PREPROCESS, SAMPLE, EVALUATE)

    preprocess = staticmethod(preprocess)
    evaluate = staticmethod(evaluate)

    def __init__(self, model: Any = None, device: str = "cpu") -> None:
        super().__init__(model, device)
        self._components: dict[str, _Components] = {}

    # -- model lifecycle -------------------------------------------------
    def load(self, variant: str | None = None) -> None:
        """Mark the engine ready; weights load lazily per variant.

        The variant is a per-edit parameter, so ``load()`` without a variant
        loads nothing yet (a ``path``/``repo`` model maps both roles to one
        folder, which fits only one of the UNet classes).  Every real load
        of a variant's components counts once in ``self.loads``.
        """
        if variant is None:
            self.loaded = True
            return
        self._get(variant)

    def _get(self, variant: str) -> _Components:
        comps = self._components.get(variant)
        if comps is None:
            comps = self._load_variant(variant)
            self._components[variant] = comps
            super().load()
        return comps

    def _load_variant(self, variant: str) -> _Components:
        from diffusers import (
            AutoencoderKL,
            DDIMScheduler,
            UNet2DConditionModel,
            UNet3DConditionModel,
        )
        from transformers import CLIPTextModel, CLIPTokenizer

        if self.model is None:
            raise RuntimeError("sdedit needs a model (ResolvedModel) to load")
        role = ROLES[variant]
        unet_cls = UNet2DConditionModel if variant == "image" else UNet3DConditionModel
        dtype = self.model.torch_dtype(self.device)

        def get(cls: Any, sub: str, **kw: Any) -> Any:
            return self.model.from_pretrained(cls, role, subfolder=sub, **kw)

        tokenizer = get(CLIPTokenizer, "tokenizer")
        scheduler = get(DDIMScheduler, "scheduler")
        nets = {
            "vae": get(AutoencoderKL, "vae", torch_dtype=dtype),
            "text_encoder": get(CLIPTextModel, "text_encoder", dtype=dtype),
            "unet": get(unet_cls, "unet", torch_dtype=dtype),
        }
        for net in nets.values():
            net.to(self.device)
            net.eval()
            net.requires_grad_(False)
        if (getattr(self.model, "options", None) or {}).get("attention_slicing") and hasattr(
            nets["unet"], "set_attention_slice"
        ):
            nets["unet"].set_attention_slice("auto")
        return _Components(
            vae=nets["vae"],
            text_encoder=nets["text_encoder"],
            tokenizer=tokenizer,
            unet=nets["unet"],
            scheduler_config=scheduler.config,
            dtype=dtype,
        )

    # -- helpers -----------------------------------------------------------
    def _embed(self, c: _Components, text: str) -> Any:
        import torch

        tok = c.tokenizer(
            [text],
            padding="max_length",
            max_length=c.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        ids = tok.input_ids.to(self.device)
        with torch.inference_mode():
            return c.text_encoder(ids)[0].to(c.dtype)

    def _encode(self, c: _Components, frames: np.ndarray, batch: int) -> Any:
        """uint8 [T,H,W,3] -> scaled latents [T,C,h,w] (VAE posterior mean)."""
        import torch

        out = []
        for i in range(0, len(frames), batch):
            x = torch.from_numpy(np.ascontiguousarray(frames[i : i + batch]))
            x = x.permute(0, 3, 1, 2).to(self.device, c.dtype) / 127.5 - 1.0
            out.append(c.vae.encode(x).latent_dist.mode())
        return torch.cat(out) * c.vae.config.scaling_factor

    def _decode(self, c: _Components, latents: Any, batch: int) -> np.ndarray:
        """scaled latents [T,C,h,w] -> uint8 [T,H,W,3]."""
        out = []
        for i in range(0, latents.shape[0], batch):
            x = c.vae.decode(latents[i : i + batch] / c.vae.config.scaling_factor).sample
            x = ((x.float() / 2 + 0.5).clamp(0, 1) * 255).round().to("cpu")
            out.append(x.permute(0, 2, 3, 1).numpy().astype(np.uint8))
        return np.concatenate(out)

    # -- stages ------------------------------------------------------------
    def sample(self, ctx: StageContext) -> dict[str, Any]:
        import torch
        from diffusers import DDIMScheduler

        v = ctx.values
        strength = float(v["params.strength"])
        steps = int(v["params.steps"])
        guidance = float(v["params.guidance_scale"])
        eta = float(v["params.eta"])
        variant = str(v.get("params.variant", "image"))
        frame_batch = int(v.get("params.frame_batch", 8))
        prompt = v.get("edit.prompt") or ""
        negative = v.get("edit.negative_prompt") or ""

        frames = video.load_frames(ctx.inputs["preprocess"] / "frames.npy")
        info = json.loads((ctx.inputs["preprocess"] / "info.json").read_text())
        fps = float(info.get("fps", 8.0))
        t_len, height, width = (int(s) for s in frames.shape[:3])

        c = self._get(variant)
        # pad (edge) to the size the VAE + UNet need; cropped back after decoding
        m = c.multiple
        ph, pw = (-height) % m, (-width) % m
        padded = np.pad(frames, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge") if ph or pw else frames

        sched = DDIMScheduler.from_config(c.scheduler_config)
        sched.set_timesteps(steps, device=self.device)
        n = n_steps(steps, strength)
        start = steps - n
        timesteps = sched.timesteps[start:]

        gen = torch.Generator(device="cpu").manual_seed(int(ctx.seed))
        do_cfg = guidance > 1.0

        def randn(shape: tuple[int, ...]) -> Any:
            return torch.randn(shape, generator=gen, dtype=torch.float32).to(self.device, c.dtype)

        with torch.inference_mode():
            cond = self._embed(c, prompt)
            uncond = self._embed(c, negative) if do_cfg else None
            latents = self._encode(c, padded, frame_batch)  # [T,C,h,w]
            if n > 0:
                if variant == "video":
                    latents = latents.permute(1, 0, 2, 3).unsqueeze(0)  # [1,C,T,h,w]
                    noise = randn(tuple(latents.shape))
                else:
                    # the same noise for every frame
                    noise = randn((1, *latents.shape[1:])).expand_as(latents)
                if strength >= 1.0:
                    latents = noise * sched.init_noise_sigma  # pure noise: text-to-image/video
                else:
                    latents = sched.add_noise(latents, noise, timesteps[:1])

                for i, t in enumerate(timesteps, start=1):
                    if variant == "video":
                        eps = self._eps(c.unet, latents, t, cond, uncond, guidance)
                        var_noise = randn(tuple(latents.shape)) if eta > 0 else None
                    else:
                        eps = torch.cat(
                            [
                                self._eps(c.unet, latents[j : j + frame_batch], t, cond, uncond, guidance)
                                for j in range(0, latents.shape[0], frame_batch)
                            ]
                        )
                        var_noise = randn((1, *latents.shape[1:])).expand_as(latents) if eta > 0 else None
                    latents = sched.step(eps, t, latents, eta=eta, variance_noise=var_noise).prev_sample
                    ctx.progress(i, n)
                if variant == "video":
                    latents = latents.squeeze(0).permute(1, 0, 2, 3)  # back to [T,C,h,w]
            out = self._decode(c, latents, frame_batch)

        out = np.ascontiguousarray(out[:, :height, :width])
        video.save_frames(ctx.out_dir / "frames.npy", out)
        return {"frames": t_len, "height": height, "width": width, "fps": fps, "steps_run": n}

    @staticmethod
    def _eps(unet: Any, latents: Any, t: Any, cond: Any, uncond: Any, guidance: float) -> Any:
        """Noise prediction with classifier-free guidance for a batch of latents."""
        import torch

        b = latents.shape[0]
        if uncond is None:
            return unet(latents, t, encoder_hidden_states=cond.repeat(b, 1, 1)).sample
        x = torch.cat([latents, latents])
        ctx = torch.cat([uncond.repeat(b, 1, 1), cond.repeat(b, 1, 1)])
        e_u, e_c = unet(x, t, encoder_hidden_states=ctx).sample.chunk(2)
        return e_u + guidance * (e_c - e_u)
