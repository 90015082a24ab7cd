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
from typing import Any, ClassVar

import numpy as np

from engines.common import sampling
from engines.common.sampling import Components, n_steps
from engines.common.stages import EVALUATE, PREPROCESS, evaluate, preprocess
from engines.sdedit.params import SDEditParams
from recut import video
from recut.engine import Engine, Stage, StageContext

__all__ = ["ROLES", "SAMPLE", "SDEditEngine", "Settings", "edit_frames", "n_steps"]

SAMPLE = Stage(
    name="sample",
    kind="sample",
    version="1",
    reads=(
        "params.strength",
        "params.steps",
        "params.guidance_scale",
        "params.guidance_interval",
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


class SDEditEngine(Engine):
    name = "sdedit"
    description = (
        "SDEdit baseline: noise the input to an intermediate timestep and denoise toward the "
        "prompt; per frame with an SD-1.5 UNet (variant image) or over the clip with a "
        "ModelScope UNet3D (variant video)."
    )
    params_model = SDEditParams
    smoke_params: ClassVar[dict[str, Any]] = {"steps": 2}
    stages = (PREPROCESS, SAMPLE, EVALUATE)

    preprocess = staticmethod(preprocess)
    evaluate = staticmethod(evaluate)

    def __init__(self, model: Any = None, device: str = "cpu") -> None:
        super().__init__(model, device)
        self._components: dict[str, Components] = {}

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

    def _get(self, variant: str) -> Components:
        comps = self._components.get(variant)
        if comps is None:
            comps = self._load_variant(variant)
            self._components[variant] = comps
            super().load()
        return comps

    def _load_variant(self, variant: str) -> Components:
        from diffusers import UNet2DConditionModel, UNet3DConditionModel  # local: diffusers takes seconds to import

        if self.model is None:
            raise RuntimeError("sdedit needs a model (ResolvedModel) to load")
        unet_cls = UNet2DConditionModel if variant == "image" else UNet3DConditionModel
        return sampling.load_components(self.model, ROLES[variant], unet_cls, self.device)

    # -- validation --------------------------------------------------------
    @classmethod
    def check_spec(cls, spec: Any) -> list[tuple[str, str]]:
        """Each variant an edit uses needs its role in the model, with the UNet class it loads."""
        from engines.common.checks import model_config, resolved_params
        from engines.common.sampling import unguided_problem

        issues: dict[tuple[str, str], None] = {}
        try:
            components = spec.model.resolve().components
        except Exception:  # noqa: BLE001 - an unavailable model is reported by the model checks
            return []
        for params, where in resolved_params(spec, SDEditParams):
            variant = params["variant"]
            field = where.get("variant", "params.variant")
            role = ROLES[variant]
            if role not in components:
                have = ", ".join(sorted(components)) or "none"
                issues[(field, f"{variant!r} needs the model's {role!r} component; this model has: {have}")] = None
                continue
            unet = model_config(spec, role, "unet")
            want = "UNet2DConditionModel" if variant == "image" else "UNet3DConditionModel"
            if unet is not None and unet.get("_class_name") not in (None, want):
                issues[(field, f"{variant!r} loads a {want}, but the model's unet is a {unet['_class_name']}")] = None
            sched = model_config(spec, role, "scheduler", "scheduler_config.json")
            interval = params["guidance_interval"]
            problem = sched and unguided_problem(
                sched, params["steps"], params["strength"], interval, params["guidance_scale"]
            )
            if problem:
                issues[(where.get("guidance_interval", "params.guidance_interval"), problem)] = None
        return list(issues)

    # -- stages ------------------------------------------------------------
    def sample(self, ctx: StageContext) -> dict[str, Any]:
        v = ctx.values
        strength = float(v["params.strength"])
        steps = int(v["params.steps"])
        guidance = float(v["params.guidance_scale"])
        eta = float(v["params.eta"])
        variant = str(v["params.variant"])
        frame_batch = int(v["params.frame_batch"])
        prompt = v["edit.prompt"] or ""
        negative = v["edit.negative_prompt"] or ""

        frames = video.load_frames(ctx.inputs["preprocess"] / "frames.npy")
        info = json.loads((ctx.inputs["preprocess"] / "info.json").read_text())
        fps = float(info.get("fps", 8.0))
        t_len, height, width = (int(s) for s in frames.shape[:3])
        settings = Settings(strength, steps, guidance, eta, v["params.guidance_interval"], frame_batch, int(ctx.seed))
        out, n = edit_frames(self._get(variant), frames, prompt, negative, settings, variant, self.device, ctx.progress)
        video.save_frames(ctx.out_dir / "frames.npy", out)
        return {"frames": t_len, "height": height, "width": width, "fps": fps, "steps_run": n}


@dataclass(frozen=True)
class Settings:
    strength: float
    steps: int
    guidance: float
    eta: float = 0.0
    guidance_interval: Any = None
    frame_batch: int = 8
    seed: int = 0


def edit_frames(
    c: Components,
    frames: np.ndarray,
    prompt: str,
    negative: str,
    s: Settings,
    variant: str = "image",
    device: str = "cpu",
    progress: Any = None,
) -> tuple[np.ndarray, int]:
    """SDEdit on uint8 ``frames`` ``[T, H, W, 3]``: ``(edited frames, DDIM steps run)``.

    Steps: 1. pad to the VAE's multiple; 2. the strength's timesteps; 3. noise and denoise (the clip as
    one latent, or frame batches with one shared noise); 4. decode and crop."""
    import torch  # local: torch takes seconds to import; `recut validate` imports this module

    height, width = int(frames.shape[1]), int(frames.shape[2])
    guidance, frame_batch, strength = s.guidance, s.frame_batch, s.strength
    # 1. pad (edge) to the size the VAE + UNet need; cropped back after decoding
    m = c.multiple
    ph, pw = (-height) % m, (-width) % m
    padded = np.pad(frames, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge") if ph or pw else frames
    # 2. the strength's timesteps
    sched, timesteps = sampling.schedule(c.scheduler_config, s.steps, strength, device)
    window = sampling.guidance_window(s.guidance_interval, c.scheduler_config)
    n = len(timesteps)
    gen = torch.Generator(device="cpu").manual_seed(int(s.seed))
    do_cfg = guidance > 1.0

    def randn(shape: tuple[int, ...]) -> Any:
        return torch.randn(shape, generator=gen, dtype=torch.float32).to(device, c.dtype)

    with torch.inference_mode():
        cond = sampling.embed(c, prompt, device)
        uncond = sampling.embed(c, negative, device) if do_cfg else None
        latents = sampling.encode(c, padded, frame_batch, device)  # [T,C,h,w]
        if n > 0:
            # 3. noise and denoise
            if variant == "video":
                latents = latents.permute(1, 0, 2, 3).unsqueeze(0)  # [1,C,T,h,w]
                shape = tuple(latents.shape)
                noise = randn(shape)

                def var_noise() -> Any:
                    return randn(shape)

                def eps_fn(x: Any, t: Any) -> Any:
                    return sampling.guided_eps(c.unet, x, t, cond, uncond, guidance, window)

            else:
                like = latents

                def var_noise() -> Any:
                    return randn((1, *like.shape[1:])).expand_as(like)

                noise = var_noise()

                def eps_fn(x: Any, t: Any) -> Any:
                    return torch.cat(
                        [
                            sampling.guided_eps(c.unet, x[j : j + frame_batch], t, cond, uncond, guidance, window)
                            for j in range(0, x.shape[0], frame_batch)
                        ]
                    )

            latents = sampling.denoise(sched, timesteps, latents, eps_fn, noise, strength, s.eta, var_noise, progress)
            if variant == "video":
                latents = latents.squeeze(0).permute(1, 0, 2, 3)  # back to [T,C,h,w]
        # 4. decode and crop
        out = sampling.decode(c, latents, frame_batch)
    return np.ascontiguousarray(out[:, :height, :width]), n
