"""Dreamix (Molad et al., "Dreamix: Video Diffusion Models are General Video Editors", 2023).

Stages (``recut methods`` shows them):

1. ``preprocess``: decode the input media (shared stage);
2. ``prepare`` (degradation, deterministic half): downsample the input spatially
   and temporally to the base model's resolution and frame count.  In animate
   mode the image first becomes a coarse video (replication or perspective
   camera moves with reflection padding, :mod:`engines.dreamix.animation`); in
   subject mode the image collection is kept as a set of frames;
3. ``finetune``: mixed finetuning of the base video UNet on that input, once per
   input and reused by every prompt and every strength
   (:mod:`engines.dreamix.tuning`); the result is a safetensors delta;
4. ``sample`` (per edit): add noise at strength s, then text-guided corruption
   inversion: stochastic DDIM from s to 0 toward the prompt with the finetuned
   UNet (:mod:`engines.common.sampling`), optionally in frame chunks; then the
   cascade's super-resolution stages, each a video-to-video pass conditioned on
   the prompt and the previous output;
5. ``evaluate`` (per edit): the shared metrics, against the degraded input.

The base model's resolution and frame count, and the super-resolution stages,
come from the model profile's ``cascade`` (``recut.models``) or from
``params.cascade``.

Heavy libraries (torch, diffusers, and :mod:`engines.dreamix.tuning`, which imports torch) and
:mod:`engines.dreamix.animation` (a few ms) are imported inside the functions that use them, so
that importing this module stays cheap (``recut validate`` imports every engine).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, ClassVar

import numpy as np
from pydantic import ValidationError

from engines.common import sampling
from engines.common.checks import model_config, size_multiple
from engines.common.params import check_guided
from engines.common.sampling import Components
from engines.common.stages import EVALUATE, PREPROCESS, preprocess
from engines.common.stages import evaluate as common_evaluate
from engines.dreamix.params import (
    Animation,
    CascadeStage,
    DreamixParams,
    fill_defaults,
    sample_strength,
    with_rare_token,
)
from recut import video
from recut.engine import Engine, Stage, StageContext

PREPARE = Stage(
    name="prepare",
    kind="extract",
    version="1",
    reads=("params.mode", "params.animation", "params.base_frames", "params.cascade", "model"),
    after=("preprocess",),
    uses_model=True,
    description="Degradation (deterministic half): animate an image or keep an image set, then downsample "
    "spatially and temporally to the base model; frames.npy (+ set.npy in subject mode).",
)

FINETUNE = Stage(
    name="finetune",
    kind="finetune",
    version="1",
    reads=(
        "params.mode",
        "params.finetune_steps",
        "params.alpha",
        "params.lr",
        "params.finetune_method",
        "params.lora_rank",
        "params.finetune_prompt",
        "params.rare_token",
        "params.rare_token_position",
        "model",
        "seed",
    ),
    after=("prepare",),
    options=("params.frame_batch",),
    uses_model=True,
    description="Mixed finetuning of the base UNet (alpha * video + (1 - alpha) * frames objective), once per "
    "input; delta.safetensors (full weights or LoRA adapters).",
)

SAMPLE = Stage(
    name="sample",
    kind="sample",
    version="1",
    reads=(
        "params.mode",
        "params.strength",
        "params.steps",
        "params.guidance_scale",
        "params.guidance_interval",
        "params.eta",
        "params.chunk_frames",
        "params.cascade",
        "params.base_frames",
        "edit.prompt",
        "edit.negative_prompt",
        "model",
        "seed",
    ),
    after=("prepare", "finetune"),
    options=("params.frame_batch",),
    per_edit=True,
    uses_model=True,
    description="Noise the degraded input at strength s, stochastic DDIM toward the prompt with the finetuned "
    "UNet, then the cascade's super-resolution stages; frames.npy.",
)

EVALUATE_DX = dataclasses.replace(EVALUATE, after=("prepare", "sample"))


# --------------------------------------------------------------------------- cascade


def effective_cascade(
    cascade: Any, profile_cascade: tuple[dict[str, Any], ...] | list[dict[str, Any]], base_frames: int | None
) -> list[CascadeStage]:
    """The stages a sample runs: ``params.cascade`` (or the profile's), with ``base_frames`` applied."""
    if cascade in ("profile", "none"):
        stages = [CascadeStage.model_validate(s) for s in profile_cascade]
        if cascade == "none":
            stages = stages[:1]
    else:
        stages = [s if isinstance(s, CascadeStage) else CascadeStage.model_validate(s) for s in cascade]
    if base_frames and stages:
        old = stages[0].frames
        out = []
        for i, s in enumerate(stages):
            upd: dict[str, Any] = {}
            if s.frames == old:
                upd["frames"] = base_frames
            if i > 0 and s.from_ is not None and s.from_[2] == old:
                upd["from_"] = (s.from_[0], s.from_[1], base_frames)
            out.append(s.model_copy(update=upd))
        stages = out
    return stages


def chain_problems(stages: list[CascadeStage]) -> list[tuple[str, str]]:
    """``(suffix, message)`` for every place where the cascade's resolutions do not chain."""
    out: list[tuple[str, str]] = []
    if not stages:
        return [("", "the cascade is empty; it needs at least the base text-to-video stage")]
    if stages[0].kind != "t2v":
        out.append(("0.kind", f"the first stage must be the base model (kind t2v), got {stages[0].kind!r}"))
    for i in range(1, len(stages)):
        prev, st = stages[i - 1], stages[i]
        have = (prev.width, prev.height, prev.frames)
        if st.kind != "v2v":
            out.append((f"{i}.kind", f"stage {i} follows another stage, so it must be v2v (got {st.kind!r})"))
        want = tuple(st.from_) if st.from_ is not None else have
        if want != have:
            out.append(
                (
                    f"{i}.from",
                    f"stage {i} takes {want[0]}x{want[1]}x{want[2]} (width x height x frames), but stage {i - 1} "
                    f"produces {have[0]}x{have[1]}x{have[2]}",
                )
            )
        elif st.width < have[0] or st.height < have[1] or st.frames < have[2]:
            out.append(
                (
                    f"{i}",
                    f"stage {i} ({st.width}x{st.height}x{st.frames}) must not be smaller than its input "
                    f"{have[0]}x{have[1]}x{have[2]} (a super-resolution stage)",
                )
            )
    return out


def _field(where: str, name: str) -> str:
    """Where a check of the resolved params ``name`` reports: a sweep value (``sweep.<key>``) as
    itself, otherwise the field under its params block (``params.<name>``, ``edits.N.params.<name>``)."""
    return where if where.startswith("sweep") else f"{where}.{name}"


class DreamixEngine(Engine):
    name = "dreamix"
    description = (
        "Dreamix: degrade (downsample + noise at strength s), mixed video/frames finetuning once per input, "
        "stochastic-DDIM corruption inversion toward the prompt with a text-to-video UNet, optional "
        "super-resolution cascade; also image animation and subject-driven generation."
    )
    params_model = DreamixParams
    smoke_params: ClassVar[dict[str, Any]] = {"steps": 2, "finetune_steps": 1}
    stages = (PREPROCESS, PREPARE, FINETUNE, SAMPLE, EVALUATE_DX)

    preprocess = staticmethod(preprocess)

    def __init__(self, model: Any = None, device: str = "cpu") -> None:
        super().__init__(model, device)
        self._components: dict[str, Components] = {}
        self._tuned: tuple[str, Any] | None = None  # (delta identity, finetuned UNet), reused across strengths

    # -- model lifecycle -------------------------------------------------
    def load(self, role: str | None = None) -> None:
        """Weights load lazily per cascade role; every real load counts once in ``self.loads``."""
        if role is None:
            self.loaded = True
            return
        self._get(role)

    def _get(self, role: str) -> Components:
        comps = self._components.get(role)
        if comps is None:
            from diffusers import UNet3DConditionModel

            if self.model is None:
                raise RuntimeError("dreamix needs a model (ResolvedModel) to load")
            comps = sampling.load_components(self.model, role, UNet3DConditionModel, self.device)
            self._components[role] = comps
            super().load()
        return comps

    def _cascade(self, v: dict[str, Any]) -> list[CascadeStage]:
        stages = effective_cascade(v["params.cascade"], getattr(self.model, "cascade", ()), v["params.base_frames"])
        problems = chain_problems(stages)
        if problems:
            raise ValueError(f"params.cascade: {problems[0][1]}")
        return stages

    # -- validation --------------------------------------------------------
    @classmethod
    def check_spec(cls, spec: Any) -> list[tuple[str, str]]:
        issues: list[tuple[str, str]] = []
        inp = spec.input
        base: dict[str, Any] = spec.params.model_dump(by_alias=True, exclude_unset=True)
        variants: list[tuple[str, dict[str, Any]]] = [("params", {})]
        variants += [(f"edits.{i}.params", e.params) for i, e in enumerate(spec.edits) if e.params]
        variants += [
            (f"sweep.{k}", {k.split(".", 1)[1]: x}) for k, vals in spec.sweep.items() if k != "seed" for x in vals
        ]
        resolved: list[tuple[str, DreamixParams]] = []
        for where, over in variants:
            try:
                resolved.append((where, DreamixParams.model_validate({**base, **over}).filled()))
            except ValidationError:
                continue  # reported by the schema / override / sweep checks
        p = spec.params
        # 1. mode vs input
        if p.mode == "subject":
            if inp.kind != "images":
                issues.append(
                    ("input", f"subject mode needs `images:` (a collection of one subject), got `{inp.kind}`")
                )
            elif len(inp.images or []) < 2:
                n = len(inp.images or [])
                issues.append(
                    ("input.images", f"subject mode needs at least 2 images of the subject to finetune on, got {n}")
                )
        elif p.mode == "animate" and inp.kind != "image":
            issues.append(("input", f"animate mode needs one `image:`, got `{inp.kind}`"))
        elif p.mode == "edit" and inp.kind not in ("video", "toy"):
            issues.append(
                ("input", f"edit mode needs a `video:` or a `toy:` scene, got `{inp.kind}` (see params.mode)")
            )
        # 2. subject mode: frames objective only, text-only generation
        for where, rp in resolved:
            if rp.mode != "subject":
                continue
            if rp.alpha and rp.alpha > 0:
                issues.append(
                    (
                        _field(where, "alpha"),
                        f"subject mode finetunes on an image collection, which has no motion; alpha must be 0 "
                        f"(got {rp.alpha})",
                    )
                )
            if rp.strength is not None and rp.strength < 1.0:
                issues.append(
                    (
                        _field(where, "strength"),
                        f"subject mode generates from text alone; strength must be 1 (got {rp.strength})",
                    )
                )
        # 3. finetune prompt
        if inp.kind != "toy" and not p.finetune_prompt and any(rp.finetune_steps for _, rp in resolved):
            issues.append(
                ("params.finetune_prompt", "describe the input for finetuning (only toy scenes have a caption)")
            )
        # 4. the cascade chains, in sizes its models take
        model = spec.model.resolve()
        multiples: dict[str, int | None] = {}
        for where, rp in resolved:
            casc = rp.cascade
            if casc in ("profile", "none") and not model.cascade:
                issues.append(
                    (
                        f"{where}.cascade",
                        f"model {model.name!r} has no cascade description; give the stages as a list "
                        "(base first: {role, width, height, frames})",
                    )
                )
                continue
            stages = effective_cascade(casc, model.cascade, rp.base_frames)
            for suffix, msg in chain_problems(stages):
                if isinstance(casc, list):
                    issues.append((f"{where}.cascade" + (f".{suffix}" if suffix else ""), msg))
                else:
                    issues.append(("model.profile", f"the profile's cascade does not chain: {msg}"))
            for k, st in enumerate(stages):  # each stage's size, as its role's VAE and UNet take it
                if st.role not in multiples:  # read each role's configs once
                    multiples[st.role] = size_multiple(spec, st.role)
                m = multiples[st.role]
                if m and (st.width % m or st.height % m):
                    msg = (
                        f"stage {k} is {st.width}x{st.height}, which the model's {st.role!r} weights need as "
                        f"multiples of {m}"
                    )
                    if isinstance(casc, list):
                        issues.append((f"{where}.cascade.{k}", msg))
                    else:
                        issues.append(("model.profile", f"the profile's cascade: {msg}"))
            # 5. every v2v stage runs from its own strength with the same guidance interval, and some
            #    timestep each stage takes (its scheduler's own) falls inside that interval
            for k, st in enumerate(stages):
                strength = sample_strength(rp.mode, rp.strength) if k == 0 else st.strength
                if k:  # the base stage's strength was checked by the params model
                    try:
                        check_guided(rp.guidance_interval, st.strength, rp.guidance_scale)
                    except ValueError as exc:
                        source = "params.cascade" if isinstance(casc, list) else f"the {model.name} profile's cascade"
                        issues.append(
                            (
                                _field(where, "guidance_interval"),
                                f"{source}, stage {k} ({st.role}, strength {st.strength}): {exc}",
                            )
                        )
                        continue
                sched = model_config(spec, st.role, "scheduler", "scheduler_config.json")
                problem = sched and sampling.unguided_problem(
                    sched, rp.steps, strength, rp.guidance_interval, rp.guidance_scale
                )
                if problem:
                    issues.append((_field(where, "guidance_interval"), f"stage {k} ({st.role}): {problem}"))
        return list(dict.fromkeys(issues))  # each problem once (sweep values can repeat one)

    # -- stages ------------------------------------------------------------
    def prepare(self, ctx: StageContext) -> dict[str, Any]:
        v = ctx.values
        pre = ctx.inputs["preprocess"]
        frames = video.load_frames(pre / "frames.npy")
        info = json.loads((pre / "info.json").read_text())
        mode = str(v["params.mode"])
        base = self._cascade(v)[0]
        w, h, n = base.width, base.height, base.frames
        from engines.dreamix.animation import animate, degrade_frames, resample_indices

        fps = float(info.get("fps", 8.0))
        idx = None
        if mode == "animate":
            still = video.fit_frames(frames[:1], w, h, "crop")[0]
            out = animate(still, n, Animation.model_validate(v["params.animation"]))
        elif mode == "subject":
            subject = video.fit_frames(frames, w, h, "crop")
            video.save_frames(ctx.out_dir / "set.npy", subject)
            out = subject[resample_indices(len(subject), n)]
        else:
            out, idx = degrade_frames(frames, w, h, n)
            fps = fps * n / max(1, len(frames))
            self._carry_truth(ctx, idx, frames.shape[1:3], (h, w))
        video.save_frames(ctx.out_dir / "frames.npy", out)
        meta = {
            "fps": fps,
            "frames": n,
            "height": h,
            "width": w,
            "mode": mode,
            "role": base.role,
            "caption": info.get("caption"),
            "source_frames": None if idx is None else [int(i) for i in idx],
        }
        (ctx.out_dir / "info.json").write_text(json.dumps(meta, indent=1))
        return meta

    @staticmethod
    def _carry_truth(ctx: StageContext, idx: np.ndarray, src_hw: tuple[int, ...], dst_hw: tuple[int, int]) -> None:
        """Toy inputs: keep the ground truth when degradation kept every frame at its size.

        The toy metrics index the truth by the spec's ``input.frames``, so a clip that was
        resampled in time or space carries no truth (its outputs get the plain metrics).
        """
        pre = ctx.inputs["preprocess"]
        n_src = len(video.load_frames(pre / "frames.npy"))
        if not (pre / "truth.npz").exists() or tuple(src_hw) != tuple(dst_hw) or list(idx) != list(range(n_src)):
            return
        for name in ("truth.npz", "scene.json"):
            (ctx.out_dir / name).write_bytes((pre / name).read_bytes())

    def finetune(self, ctx: StageContext) -> dict[str, Any]:
        import torch
        from diffusers import DDIMScheduler

        from engines.dreamix.tuning import MixedObjective, run_finetune

        v = ctx.values
        alpha, _, steps = fill_defaults(str(v["params.mode"]), v["params.alpha"], None, v["params.finetune_steps"])
        info = json.loads((ctx.inputs["prepare"] / "info.json").read_text())
        if steps == 0:
            (ctx.out_dir / "finetune.json").write_text(json.dumps({"steps": 0}))
            return {"steps": 0}
        # 1. the finetune text: rare token + description of the input
        prompt = v["params.finetune_prompt"] or info.get("caption") or ""
        if not prompt:
            raise ValueError("params.finetune_prompt: describe the input for finetuning (no caption available)")
        text = with_rare_token(prompt, str(v["params.rare_token"] or ""), str(v["params.rare_token_position"]))
        # 2. latents of the clip and of the frame set
        c = self._get(str(info.get("role", "video")))
        batch = int(v["params.frame_batch"])
        clip = video.load_frames(ctx.inputs["prepare"] / "frames.npy")
        set_file = ctx.inputs["prepare"] / "set.npy"
        frame_set = video.load_frames(set_file) if set_file.exists() else clip
        with torch.inference_mode():
            lat_clip = sampling.encode(c, clip, batch, self.device)  # [F,C,h,w]
            lat_set = sampling.encode(c, frame_set, batch, self.device)  # [N,C,h,w]
            cond = sampling.embed(c, text, self.device)
        objective = MixedObjective(
            video=lat_clip.clone().permute(1, 0, 2, 3).unsqueeze(0),
            frames=lat_set.clone().unsqueeze(2),
            cond=cond.clone(),
            alpha=alpha,
        )
        # 3. the loop (shared) and the delta
        res = run_finetune(
            c.unet,
            DDIMScheduler.from_config(c.scheduler_config),
            objective,
            steps=steps,
            lr=float(v["params.lr"]),
            seed=int(ctx.seed),
            method=str(v["params.finetune_method"]),
            rank=int(v["params.lora_rank"]),
            out_file=ctx.out_dir / "delta.safetensors",
            progress=ctx.progress,
            metadata={"text": text, "alpha": alpha, "steps": steps},
        )
        (ctx.out_dir / "finetune.json").write_text(json.dumps({"text": text, **res}, indent=1))
        return {
            "steps": steps,
            "text": text,
            "first_loss": res["losses"][0],
            "last_loss": res["losses"][-1],
            "trained_numel": res["trained_numel"],
            "video_steps": res["video_steps"],
            "frames_steps": res["frames_steps"],
            "delta_bytes": (ctx.out_dir / "delta.safetensors").stat().st_size,
        }

    def _base_unet(self, c: Components, ft_dir: Any) -> Any:
        """The base UNet with the finetune delta applied (kept for the next strength/prompt), or the resident one.

        The finetune artifact's folder is content-addressed (its cache key), so folder + size + mtime
        identify the delta without hashing a possibly multi-GB file for every sample.
        """
        delta = ft_dir / "delta.safetensors"
        if not delta.exists():
            return c.unet
        st = delta.stat()
        ident = f"{delta.resolve()}:{st.st_size}:{st.st_mtime_ns}"
        if self._tuned is None or self._tuned[0] != ident:
            from engines.dreamix.tuning import load_tuned

            self._tuned = None  # free the previous copy before building the next
            self._tuned = (ident, load_tuned(c.unet, delta))
        return self._tuned[1]

    def sample(self, ctx: StageContext) -> dict[str, Any]:
        import torch

        v = ctx.values
        mode = str(v["params.mode"])
        strength = sample_strength(mode, v["params.strength"])
        steps = int(v["params.steps"])
        guidance = float(v["params.guidance_scale"])
        interval = v["params.guidance_interval"]
        eta = float(v["params.eta"])
        chunk = v["params.chunk_frames"]
        batch = int(v["params.frame_batch"])
        prompt = v["edit.prompt"] or ""
        negative = v["edit.negative_prompt"] or ""
        stages = self._cascade(v)
        frames = video.load_frames(ctx.inputs["prepare"] / "frames.npy")
        info = json.loads((ctx.inputs["prepare"] / "info.json").read_text())

        gen = torch.Generator(device="cpu").manual_seed(int(ctx.seed))
        plan = [strength] + [s.strength for s in stages[1:]]
        total = sum(sampling.n_steps(steps, s) for s in plan)
        done = [0]

        def tick(i: int, n: int) -> None:
            ctx.progress(done[0] + i, total)

        runs = []
        current = frames
        for k, st in enumerate(stages):
            c = self._get(st.role)
            # 1. the stage's input: the degraded video (base) or the previous output, upscaled
            if k > 0:
                from engines.dreamix.animation import resample_indices

                current = video.fit_frames(
                    current[resample_indices(len(current), st.frames)], st.width, st.height, "stretch"
                )
            m = c.multiple
            if current.shape[1] % m or current.shape[2] % m:
                raise ValueError(
                    f"params.cascade: stage {k} is {current.shape[2]}x{current.shape[1]}, which the model needs "
                    f"as multiples of {m}"
                )
            unet = self._base_unet(c, ctx.inputs["finetune"]) if k == 0 else c.unet
            s = plan[k]
            # 2. noise at the stage's strength, stochastic DDIM toward the prompt
            out = self._denoise(
                c, unet, current, prompt, negative, s, steps, (guidance, interval), eta, chunk, batch, gen, tick
            )
            done[0] += sampling.n_steps(steps, s)
            runs.append({"stage": k, "role": st.role, "strength": s, "shape": list(out.shape[:3])})
            current = out
        video.save_frames(ctx.out_dir / "frames.npy", current)
        fps = float(info.get("fps", 8.0)) * current.shape[0] / max(1, frames.shape[0])
        t_len, height, width = (int(x) for x in current.shape[:3])
        return {
            "frames": t_len,
            "height": height,
            "width": width,
            "fps": fps,
            "strength": strength,
            "steps_run": total,
            "cascade": runs,
        }

    def _denoise(
        self,
        c: Components,
        unet: Any,
        frames: np.ndarray,
        prompt: str,
        negative: str,
        strength: float,
        steps: int,
        guidance: tuple[float, Any],
        eta: float,
        chunk: int | None,
        batch: int,
        gen: Any,
        progress: Any,
    ) -> np.ndarray:
        """One cascade stage: encode, noise to ``strength``, DDIM (``eta``) toward the prompt, decode
        (``guidance``: the scale and the guidance interval)."""
        import torch

        sched, timesteps = sampling.schedule(c.scheduler_config, steps, strength, self.device)
        scale, window = guidance[0], sampling.guidance_window(guidance[1], c.scheduler_config)

        def randn(shape: tuple[int, ...]) -> Any:
            return torch.randn(shape, generator=gen, dtype=torch.float32).to(self.device, c.dtype)

        with torch.inference_mode():
            cond = sampling.embed(c, prompt, self.device)
            uncond = sampling.embed(c, negative, self.device) if scale > 1.0 else None
            latents = sampling.encode(c, frames, batch, self.device).permute(1, 0, 2, 3).unsqueeze(0)
            shape = tuple(latents.shape)

            def eps(x: Any, t: Any) -> Any:
                return sampling.guided_eps(unet, x, t, cond, uncond, scale, window)

            if len(timesteps):
                latents = sampling.denoise(
                    sched,
                    timesteps,
                    latents,
                    sampling.chunked(eps, chunk),
                    randn(shape),
                    strength,
                    eta,
                    lambda: randn(shape),
                    progress,
                )
            return sampling.decode(c, latents.squeeze(0).permute(1, 0, 2, 3), batch)

    def evaluate(self, ctx: StageContext) -> dict[str, Any]:
        """The shared evaluation, against the degraded input (the base model's frames and size)."""
        inputs = {"preprocess": ctx.inputs["prepare"], "sample": ctx.inputs["sample"]}
        return common_evaluate(dataclasses.replace(ctx, inputs=inputs))
