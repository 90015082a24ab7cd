"""Video-P2P (Liu et al., "Video-P2P: Video Editing with Cross-attention Control", 2023).

Stages (the per-edit part is only ``sample`` and ``evaluate``):

1. ``preprocess``: the shared decode/resize stage.
2. ``finetune``: inflate the image UNet (role ``image``) into a text-to-set
   model (:mod:`engines.common.inflate`), tune it on the clip with the source
   prompt (:mod:`engines.common.finetune`); ``delta.safetensors`` holds only the
   trained parameters.
3. ``invert``: DDIM inversion of the clip under the source prompt with the tuned
   model; ``trajectory.safetensors`` ``[steps+1, C, F, h, w]`` (z*_0 ... z*_T).
4. ``nulltext`` (kind invert): null-text optimisation along that trajectory
   (:mod:`engines.common.nulltext`); ``null.safetensors`` with one embedding per
   step (shared by the frames, or per frame), plus the guided reconstruction
   of the clip (``recon.npy``) and its PSNR.
5. ``sample`` (per edit): two-branch decoupled-guidance DDIM sampling with
   prompt-to-prompt attention control (:mod:`engines.common.p2p`);
   ``frames.npy``, and ``edit_mask.npy`` (bool ``[T,H,W]``) when local blend is on.
6. ``evaluate``: the shared metrics stage (``evaluate.mask: engine`` uses the blend mask).

Frame sizes must be multiples of the VAE factor times the UNet's downsampling
(8 for the toy models, 64 for SD 1.5).  Everything runs in float32 on the CPU
and in the model's dtype (fp16 for ``sd15``) on CUDA.

Heavy libraries (torch, diffusers, safetensors, and the ``engines.common`` and
``engines.videop2p`` modules that import them) are imported inside the functions that use
them, so that importing this module stays cheap (``recut validate`` imports every engine).
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from engines.common import sampling
from engines.common.metrics import psnr
from engines.common.stages import EVALUATE, PREPROCESS, evaluate, preprocess
from engines.videop2p.params import VideoP2PParams
from recut import video
from recut.engine import Engine, Stage, StageContext

_MODEL_STAGE_OPTIONS = ("params.frame_chunk",)

FINETUNE = Stage(
    name="finetune",
    kind="finetune",
    version="1",
    reads=("params.source_prompt", "params.finetune", "params.frame_attention", "model", "seed"),
    after=("preprocess",),
    options=_MODEL_STAGE_OPTIONS,
    uses_model=True,
    description="Inflate the image UNet to a T2S model and tune it on the clip with the source prompt; "
    "delta.safetensors (trained parameters only) + losses.json.",
)
INVERT = Stage(
    name="invert",
    kind="invert",
    version="1",
    reads=("params.source_prompt", "params.inversion.steps", "params.frame_attention", "model"),
    after=("preprocess", "finetune"),
    options=_MODEL_STAGE_OPTIONS,
    uses_model=True,
    description="DDIM inversion of the clip under the source prompt with the tuned T2S model; "
    "trajectory.safetensors (z*_0 .. z*_T).",
)
NULLTEXT = Stage(
    name="nulltext",
    kind="invert",
    version="1",
    reads=("params.source_prompt", "params.inversion", "params.guidance_scale", "params.frame_attention", "model"),
    after=("preprocess", "finetune", "invert"),
    options=_MODEL_STAGE_OPTIONS,
    uses_model=True,
    description="Null-text optimisation along the inversion (shared or per frame; `fast` skips it); "
    "null.safetensors + the guided reconstruction recon.npy and its PSNR.",
)
SAMPLE = Stage(
    name="sample",
    kind="sample",
    version="1",
    reads=(
        "params.source_prompt",
        "params.frame_attention",
        "params.guidance_scale",
        "params.mode",
        "params.cross_replace",
        "params.self_replace",
        "params.blend",
        "params.equalizer",
        "params.guidance",
        "edit.prompt",
        "edit.negative_prompt",
        "model",
    ),
    after=("preprocess", "finetune", "invert", "nulltext"),
    options=_MODEL_STAGE_OPTIONS,
    per_edit=True,
    uses_model=True,
    description="Decoupled-guidance two-branch DDIM sampling with prompt-to-prompt attention control; "
    "frames.npy (+ edit_mask.npy with local blend).",
)


@dataclass
class Components(sampling.Components):
    """The shared components plus the device, with the video latent layout ``[1, C, T, h, w]``."""

    device: str = "cpu"

    def scheduler(self) -> Any:
        from diffusers import DDIMScheduler

        return DDIMScheduler.from_config(self.scheduler_config)

    def embed(self, text: str) -> Any:
        return sampling.embed(self, text, self.device)

    def encode(self, frames: np.ndarray, batch: int = 8) -> Any:
        """uint8 ``[T,H,W,3]`` -> scaled latents ``[1, C, T, h, w]`` (VAE posterior mean)."""
        import torch

        with torch.no_grad():
            return sampling.encode(self, frames, batch, self.device).permute(1, 0, 2, 3).unsqueeze(0)

    def decode(self, latents: Any, batch: int = 8) -> np.ndarray:
        """``[1, C, T, h, w]`` -> uint8 ``[T,H,W,3]``."""
        import torch

        with torch.no_grad():
            return sampling.decode(self, latents[0].permute(1, 0, 2, 3), batch)


def load_components(model: Any, device: str = "cpu") -> Components:
    """VAE, text encoder, tokenizer, UNet and scheduler config of the model's ``image`` role
    (loaded by the shared :func:`engines.common.sampling.load_components`)."""
    from diffusers import UNet2DConditionModel

    c = sampling.load_components(model, "image", UNet2DConditionModel, device)
    return Components(c.vae, c.text_encoder, c.tokenizer, c.unet, c.scheduler_config, c.dtype, device)


def _file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class VideoP2PEngine(Engine):
    name = "videop2p"
    description = (
        "Video-P2P: tune an inflated text-to-set model on the clip, DDIM + null-text inversion "
        "(shared across frames), then decoupled-guidance prompt-to-prompt attention control per edit "
        "(replace, refine, reweight, local blend)."
    )
    params_model = VideoP2PParams
    smoke_params: ClassVar[dict[str, Any]] = {"finetune": {"steps": 1}, "inversion": {"steps": 2, "inner_steps": 1}}
    writes_edit_mask = True
    stages = (PREPROCESS, FINETUNE, INVERT, NULLTEXT, SAMPLE, EVALUATE)

    preprocess = staticmethod(preprocess)
    evaluate = staticmethod(evaluate)

    def __init__(self, model: Any = None, device: str = "cpu") -> None:
        super().__init__(model, device)
        self.components: Components | None = None
        self._t2s: tuple[str, Any] | None = None  # (delta sha + frame attention, tuned T2S model)

    # -- model lifecycle -------------------------------------------------
    def load(self) -> None:
        if self.model is None:
            raise RuntimeError("videop2p needs a model (ResolvedModel) to load")
        self.components = load_components(self.model, self.device)
        super().load()

    @property
    def c(self) -> Components:
        self.ensure_loaded()
        assert self.components is not None
        return self.components

    def fresh_t2s(self, frame_attention: str) -> Any:
        """The untuned T2S model: a copy of the image UNet, inflated."""
        from engines.common.inflate import inflate

        return inflate(copy.deepcopy(self.c.unet), frame_attention).eval()

    def tuned_t2s(self, finetune_dir: Path, frame_attention: str) -> Any:
        """The T2S model with a finetune stage's delta loaded (kept for the next call with the same delta)."""
        from engines.common.finetune import load_delta

        delta = finetune_dir / "delta.safetensors"
        ident = _file_sha(delta) + ":" + frame_attention
        if self._t2s is None or self._t2s[0] != ident:
            t2s = self.fresh_t2s(frame_attention)
            load_delta(t2s, delta)
            t2s.requires_grad_(False)
            self._t2s = (ident, t2s)
        return self._t2s[1]

    def _frames(self, ctx: StageContext) -> np.ndarray:
        frames = video.load_frames(ctx.inputs["preprocess"] / "frames.npy")
        m = self.c.multiple
        _t, h, w = frames.shape[:3]
        if h % m or w % m:
            raise ValueError(
                f"videop2p needs frame sizes that are multiples of {m} for this model; the clip is {w}x{h} "
                "(set input.size, or toy width/height)"
            )
        return frames

    # -- stages ------------------------------------------------------------
    def finetune(self, ctx: StageContext) -> dict[str, Any]:
        import torch
        from diffusers import DDPMScheduler

        from engines.common.finetune import FinetuneConfig, finetune, save_delta, select_parameters

        v = ctx.values
        ft = v["params.finetune"]
        c = self.c
        latents = c.encode(self._frames(ctx))
        cond = c.embed(v["params.source_prompt"])
        t2s = self.fresh_t2s(v["params.frame_attention"])
        t2s.state.frame_chunk = int(v["params.frame_chunk"])
        params = select_parameters(t2s, ft["trainable"])
        cfg = FinetuneConfig(
            steps=int(ft["steps"]), lr=float(ft["lr"]), seed=int(ctx.seed), max_grad_norm=ft["max_grad_norm"]
        )
        with torch.enable_grad():
            res = finetune(
                t2s, params, (latents, cond), DDPMScheduler.from_config(c.scheduler_config), cfg, progress=ctx.progress
            )
        n_params = sum(p.numel() for p in params.values())
        save_delta(params, ctx.out_dir / "delta.safetensors", {"trainable": ft["trainable"], "steps": cfg.steps})
        (ctx.out_dir / "losses.json").write_text(json.dumps(res.losses))
        total = sum(p.numel() for p in t2s.parameters())
        return {
            "steps": cfg.steps,
            "trained_parameters": n_params,
            "total_parameters": total,
            "first_loss": res.first_loss,
            "last_loss": res.last_loss,
        }

    def invert(self, ctx: StageContext) -> dict[str, Any]:
        import torch
        from safetensors.torch import save_file

        from engines.common.ddim import ddim_invert

        v = ctx.values
        c = self.c
        steps = int(v["params.inversion.steps"])
        t2s = self.tuned_t2s(ctx.inputs["finetune"], v["params.frame_attention"])
        t2s.state.frame_chunk = int(v["params.frame_chunk"])
        latents = c.encode(self._frames(ctx))
        cond = c.embed(v["params.source_prompt"])
        traj = ddim_invert(lambda x, t: t2s(x, t, cond).sample, c.scheduler(), latents, steps, ctx.progress)
        save_file({"trajectory": torch.cat(traj).contiguous().cpu()}, str(ctx.out_dir / "trajectory.safetensors"))
        return {"steps": steps, "shape": list(traj[0].shape)}

    def nulltext(self, ctx: StageContext) -> dict[str, Any]:
        import torch
        from safetensors.torch import load_file, save_file

        from engines.common.nulltext import NullTextConfig, guided_reconstruction, optimize_null_text

        v = ctx.values
        c = self.c
        inv = v["params.inversion"]
        guidance = float(v["params.guidance_scale"])
        t2s = self.tuned_t2s(ctx.inputs["finetune"], v["params.frame_attention"])
        t2s.state.frame_chunk = int(v["params.frame_chunk"])
        traj_all = load_file(str(ctx.inputs["invert"] / "trajectory.safetensors"))["trajectory"].to(c.device, c.dtype)
        traj = list(traj_all.unsqueeze(1))  # [steps+1] x [1, C, F, h, w]
        steps = len(traj) - 1
        cond = c.embed(v["params.source_prompt"])
        null0 = c.embed("")

        def eps_fn(x: Any, t: int, text: Any) -> Any:
            return t2s(x, t, text).sample

        sched = c.scheduler()
        info: dict[str, Any] = {"mode": inv["null_text"], "steps": steps}
        if inv["null_text"] == "fast":
            emb = null0.repeat(steps, 1, 1)
        else:
            cfg = NullTextConfig(
                inner_steps=int(inv["inner_steps"]),
                lr=float(inv["lr"]),
                lr_decay=float(inv["lr_decay"]),
                epsilon=float(inv["epsilon"]),
                per_frame=inv["null_text"] == "per_frame",
            )
            with torch.enable_grad():
                res = optimize_null_text(eps_fn, sched, traj, cond, null0, guidance, cfg, ctx.progress)
            emb = res.embeddings
            info["inner_steps_used"] = int(sum(res.inner_steps_used))
            info["final_loss"] = res.losses[-1]
        save_file(
            {"embeddings": emb.contiguous().cpu(), "initial": null0.contiguous().cpu()},
            str(ctx.out_dir / "null.safetensors"),
        )
        z0 = guided_reconstruction(eps_fn, sched, traj[-1], steps, cond, emb, guidance)
        recon = c.decode(z0)
        frames = self._frames(ctx)
        np.save(ctx.out_dir / "recon.npy", recon)
        info["recon_psnr"] = psnr(frames, recon)
        info["vae_psnr"] = psnr(frames, c.decode(traj[0]))
        (ctx.out_dir / "info.json").write_text(json.dumps(info, indent=1))
        return info

    def sample(self, ctx: StageContext) -> dict[str, Any]:
        from safetensors.torch import load_file

        from engines.common.p2p import AttentionController, p2p_sample

        v = ctx.values
        c = self.c
        frames = self._frames(ctx)
        t_len, height, width = (int(s) for s in frames.shape[:3])
        info = json.loads((ctx.inputs["preprocess"] / "info.json").read_text())
        t2s = self.tuned_t2s(ctx.inputs["finetune"], v["params.frame_attention"])
        t2s.state.frame_chunk = int(v["params.frame_chunk"])
        traj = load_file(str(ctx.inputs["invert"] / "trajectory.safetensors"))["trajectory"].to(c.device, c.dtype)
        nulls = load_file(str(ctx.inputs["nulltext"] / "null.safetensors"))
        emb = nulls["embeddings"].to(c.device, c.dtype)
        steps = traj.shape[0] - 1
        source, target = v["params.source_prompt"], v["edit.prompt"]
        negative = v["edit.negative_prompt"] or ""
        null_tgt = c.embed(negative) if negative else nulls["initial"].to(c.device, c.dtype)

        config = control_config(v)
        controller = None
        if config.mode != "none" or config.blend is not None or config.equalizer:
            controller = AttentionController(config, c.tokenizer, source, target, steps, t_len)
        out = p2p_sample(
            t2s,
            c.scheduler(),
            traj[-1:],
            steps,
            c.embed(source),
            c.embed(target),
            emb,
            null_tgt,
            float(v["params.guidance_scale"]),
            controller,
            decoupled=v["params.guidance"] == "decoupled",
            progress=ctx.progress,
        )
        edited = c.decode(out[1:])
        video.save_frames(ctx.out_dir / "frames.npy", edited)
        meta: dict[str, Any] = {"frames": t_len, "height": height, "width": width, "fps": float(info.get("fps", 8.0))}
        meta["steps"] = steps
        if controller is not None and controller.mask is not None:
            mask = _upsample_mask(controller.mask.cpu().numpy(), height, width)
            np.save(ctx.out_dir / "edit_mask.npy", mask)
            meta["mask_fraction"] = float(mask.mean())
        return meta

    # -- validation -------------------------------------------------------
    @classmethod
    def check_spec(cls, spec: Any) -> list[tuple[str, str]]:
        from engines.videop2p.checks import check_spec

        return check_spec(spec)


def control_config(values: dict[str, Any]) -> Any:
    """The p2p ControlConfig of a sample stage's resolved values."""
    from engines.common.p2p import BlendConfig, ControlConfig

    blend = values["params.blend"]
    bc = None
    if blend:
        src = tuple(blend["source_words"])
        bc = BlendConfig(
            src,
            tuple(blend.get("target_words") or src),
            float(blend["threshold"]),
            float(blend["start"]),
            float(blend.get("max_side", 0.5)),
        )
    return ControlConfig(
        mode=values["params.mode"],
        cross_replace=float(values["params.cross_replace"]),
        self_replace=float(values["params.self_replace"]),
        equalizer={k: float(x) for k, x in (values["params.equalizer"] or {}).items()},
        blend=bc,
    )


def _upsample_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Latent-grid mask ``[F, h, w]`` -> pixel mask ``[F, H, W]`` (nearest)."""
    _f, h, w = mask.shape
    ry, rx = height // h, width // w
    return np.repeat(np.repeat(mask.astype(bool), ry, axis=1), rx, axis=2)[:, :height, :width]
