"""Gen-1 (Esser et al., "Structure and Content-Guided Video Synthesis with Diffusion Models", ICCV 2023).

A video is regenerated from noise with the *structure* of the input (a per-frame depth map, blurred to
the level t_s) and new *content* (text, a reference image's CLIP embedding, or the prompt mapped to an
image embedding by a prior), with classifier-free guidance ω on the content and temporal guidance ω_t
between the video model and the same network as an image model. With a mask, the kept region is the
input's noised latents at every step.

Stages: ``preprocess`` -> ``extract`` (the structure maps, once per input video and representation,
shared by every edit, t_s and guidance setting) -> ``finetune`` (customization on a subject, once per
subject; a no-op without ``customize``) -> ``sample`` (per edit and sweep point) -> ``evaluate``.
The model folder (role ``gen1``) holds ``unet`` (a ``UNet3DConditionModel`` whose ``conv_in`` takes
the latents, the structure latent and the 4-channel t_s embedding),
``content_projection``, ``prior``, ``scheduler``, ``text_encoder``, ``tokenizer``, ``vae``, ``clip``
(``CLIPModel``) and ``depth`` (``DPTForDepthEstimation``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from engines.common import sampling
from engines.common.regions import box_region
from engines.common.stages import EVALUATE, PREPROCESS, evaluate, preprocess
from engines.gen1.params import Gen1Params
from recut import video
from recut.engine import Engine, Stage, StageContext

__all__ = ["EXTRACT", "SAMPLE", "Gen1Engine"]

ROLE = "gen1"

EXTRACT = Stage(
    name="extract",
    kind="extract",
    version="1",
    reads=("params.structure", "model"),
    after=("preprocess",),
    uses_model=True,
    description="The structure maps of the input frames (depth by the model's DPT, or edges), normalised "
    "over the clip; structure.npy (float16 [T,H,W]).",
)

FINETUNE = Stage(
    name="finetune",
    kind="finetune",
    version="1",
    reads=("params.customize", "params.structure", "model", "seed"),
    options=("runtime.files",),
    uses_model=True,
    description="Customization: tune the UNet on the subject images (each with its structure at a random "
    "t_s), half of each batch from the regularization data; delta.safetensors (empty without `customize`).",
)

SAMPLE = Stage(
    name="sample",
    kind="sample",
    version="1",
    reads=(
        "params.structure_level",
        "params.content",
        "params.content_image",
        "params.steps",
        "params.guidance_scale",
        "params.temporal_guidance",
        "params.eta",
        "params.mask",
        "edit.prompt",
        "edit.negative_prompt",
        "model",
        "seed",
    ),
    after=("preprocess", "extract", "finetune"),
    options=("runtime.files",),
    per_edit=True,
    uses_model=True,
    description="DDIM from noise with the structure at level t_s, the content (text, image or prior), "
    "guidance ω and ω_t, and the kept region of a mask; frames.npy (+ edit_mask.npy).",
)


class Gen1Engine(Engine):
    name = "gen1"
    description = (
        "Gen-1: regenerate the video from noise with the input's depth structure (blurred to level t_s) "
        "and content from text, a reference image or a prior; content guidance ω, temporal guidance ω_t, "
        "masked editing."
    )
    params_model = Gen1Params
    smoke_params: ClassVar[dict[str, Any]] = {"steps": 2}
    writes_edit_mask = True
    file_params = ("content_image", "mask.file", "customize.images", "customize.regularization")
    stages = (PREPROCESS, EXTRACT, FINETUNE, SAMPLE, EVALUATE)

    preprocess = staticmethod(preprocess)
    evaluate = staticmethod(evaluate)

    def __init__(self, model: Any = None, device: str = "cpu") -> None:
        super().__init__(model, device)
        self._g: Any = None
        self._depth: Any = None

    # -- model lifecycle -------------------------------------------------
    def load(self) -> None:
        """Load the Gen-1 components once (the DPT loads on the first depth extraction)."""
        from diffusers import UNet3DConditionModel

        from engines.common.content import ContentProjection, EmbeddingPrior
        from engines.gen1.sampler import Gen1Components
        from recut.models import ModelNotAvailable

        if self.model is None:
            raise RuntimeError("gen1 needs a model (ResolvedModel) to load")
        base = sampling.load_components(self.model, ROLE, UNet3DConditionModel, self.device)

        def optional(cls: Any, sub: str) -> Any:
            try:
                return self.model.from_pretrained(cls, ROLE, subfolder=sub).to(self.device).eval()
            except ModelNotAvailable:
                return None

        clip, proc = self._clip()
        self._g = Gen1Components(
            base, optional(ContentProjection, "content_projection"), optional(EmbeddingPrior, "prior"), clip, proc
        )
        super().load()

    @property
    def components(self) -> Any:
        """The loaded :class:`engines.gen1.sampler.Gen1Components` (loads them on first use)."""
        self.ensure_loaded()
        return self._g

    def _clip(self) -> tuple[Any, Any]:
        from transformers import CLIPModel, CLIPProcessor

        from recut.models import ModelNotAvailable

        try:
            clip = self.model.from_pretrained(CLIPModel, ROLE, subfolder="clip").to(self.device).eval()
            return clip, self.model.from_pretrained(CLIPProcessor, ROLE, subfolder="clip")
        except ModelNotAvailable:
            return None, None

    def _depth_model(self) -> tuple[Any, Any]:
        if self._depth is None:
            from transformers import DPTForDepthEstimation, DPTImageProcessor

            m = self.model.from_pretrained(DPTForDepthEstimation, ROLE, subfolder="depth").to(self.device).eval()
            self._depth = (m, self.model.from_pretrained(DPTImageProcessor, ROLE, subfolder="depth"))
        return self._depth

    def structure_maps(self, structure: str, frames: np.ndarray) -> np.ndarray:
        """``frames``' maps in the representation ``structure`` (the DPT loads only for depth)."""
        from engines.common.structure import STRUCTURES

        rep = STRUCTURES[structure]
        return rep.extract(frames, *self._depth_model()) if rep.needs_model else rep.extract(frames)

    # -- stages ------------------------------------------------------------
    def extract(self, ctx: StageContext) -> dict[str, Any]:
        frames = video.load_frames(ctx.inputs["preprocess"] / "frames.npy")
        structure = str(ctx.values["params.structure"])
        maps = self.structure_maps(structure, frames)
        np.save(ctx.out_dir / "structure.npy", maps.astype(np.float16))
        return {"structure": structure, "frames": int(maps.shape[0]), "height": int(maps.shape[1])}

    def finetune(self, ctx: StageContext) -> dict[str, Any]:
        """Steps: 1. nothing to do without ``customize``; 2. the images and their structure at every level;
        3. the finetune loop (engines.common.finetune); 4. the delta."""
        from engines.common.finetune import save_delta
        from engines.gen1.customize import customize

        v = ctx.values
        c = v["params.customize"]
        # 1. no customization: an empty delta, shared by every spec of this model
        if c is None:
            save_delta({}, ctx.out_dir / "delta.safetensors", {"customized": "false"})
            return {"customized": False}
        files = v["runtime.files"]
        images = [files[f"customize.images.{i}"] for i in range(len(c["images"]))]
        regular = [files[f"customize.regularization.{i}"] for i in range(len(c["regularization"]))]
        # 2.-3.
        structure = str(v["params.structure"])
        unet, params, result = customize(
            self._g, lambda f: self.structure_maps(structure, f), c, images, regular, int(v["seed"]), ctx.progress
        )
        # 4.
        meta = {"customized": "true", "prompt": c["prompt"]}
        save_delta(params, ctx.out_dir / "delta.safetensors", meta)
        del unet
        return {
            "customized": True,
            "trained": len(params),
            "first_loss": result.first_loss,
            "last_loss": result.last_loss,
        }

    def _tuned(self, delta_dir: Path) -> Any:
        """The components with the finetune's delta applied to a copy of the UNet (the base stays as loaded)."""
        import copy
        import dataclasses

        from engines.common.finetune import delta_metadata, load_delta

        delta = delta_dir / "delta.safetensors"
        if delta_metadata(delta).get("customized") != "true":
            return self._g
        unet = copy.deepcopy(self._g.base.unet)
        load_delta(unet, delta, strict=True)
        unet.eval().requires_grad_(False)
        return dataclasses.replace(self._g, base=dataclasses.replace(self._g.base, unet=unet))

    def sample(self, ctx: StageContext) -> dict[str, Any]:
        """Steps: 1. structure maps and input; 2. content context; 3. the mask; 4. sample; 5. write."""
        from engines.gen1.sampler import SampleSettings
        from engines.gen1.sampler import sample as run

        v = ctx.values
        g = self._tuned(ctx.inputs["finetune"])
        # 1. structure and input
        maps = np.load(ctx.inputs["extract"] / "structure.npy").astype(np.float32)
        frames = video.load_frames(ctx.inputs["preprocess"] / "frames.npy")
        t, h, w = maps.shape
        if h % g.base.multiple or w % g.base.multiple:
            raise ValueError(
                f"frames of {w}x{h} are not multiples of {g.base.multiple} (this model's VAE and UNet); set input.size"
            )
        # 2. content
        prompt, negative = str(v["edit.prompt"] or ""), str(v["edit.negative_prompt"] or "")
        cond = self._content(g, str(v["params.content"]), prompt, v["runtime.files"].get("content_image"))
        uncond = sampling.embed(g.base, negative, self.device)
        # 3. the mask
        keep = None
        if v["params.mask"] is not None:
            keep = keep_region(
                v["params.mask"], v["runtime.files"].get("mask.file"), ctx.inputs["preprocess"], (t, h, w)
            )
        # 4. sample
        settings = SampleSettings(
            structure_level=int(v["params.structure_level"]),
            steps=int(v["params.steps"]),
            content_guidance=float(v["params.guidance_scale"]),
            temporal_guidance=float(v["params.temporal_guidance"]),
            eta=float(v["params.eta"]),
            seed=int(v["seed"]),
        )
        paste = bool(keep is not None and v["params.mask"]["paste_back"])
        out = run(g, maps, cond, uncond, settings, keep, frames if keep is not None else None, ctx.progress, paste)
        # 5. write
        video.save_frames(ctx.out_dir / "frames.npy", out)
        if keep is not None:
            np.save(ctx.out_dir / "edit_mask.npy", ~keep)
        info = json.loads((ctx.inputs["preprocess"] / "info.json").read_text())
        return {"fps": float(info.get("fps", 8.0)), "content": str(v["params.content"]), "masked": keep is not None}

    def _content(self, g: Any, source: str, prompt: str, image: str | None) -> Any:
        from engines.common.content import image_embeddings
        from engines.gen1.sampler import image_context, prior_embedding

        if source == "text":
            return sampling.embed(g.base, prompt, self.device)
        if source == "prior":
            return image_context(g, prior_embedding(g, prompt))
        if g.clip is None:
            raise ValueError("content 'image' needs the model's `clip` component (a CLIPModel)")
        img = video.read_image(image)
        return image_context(g, image_embeddings(g.clip, g.clip_processor, img[None]))

    # -- validation --------------------------------------------------------
    @classmethod
    def check_spec(cls, spec: Any) -> list[tuple[str, str]]:
        from engines.gen1.checks import check_spec

        return check_spec(spec)


def keep_region(mask: dict[str, Any], file: str | None, pre_dir: Path, shape: tuple[int, int, int]) -> np.ndarray:
    """``[T, H, W]`` bool, True where the input is kept: the mask, or its complement (``keep``)."""
    t, h, w = shape
    if mask.get("boxes"):
        region = np.logical_or.reduce([box_region(b, h, w) for b in mask["boxes"]])
        region = np.repeat(region[None], t, axis=0)
    elif mask.get("truth"):
        from toyworld import scene as toy  # a toy input's ground truth: its objects

        truth = toy.load_truth(pre_dir)
        region = truth.full_masks.any(axis=1)
    else:
        if file is None:
            raise ValueError("params.mask.file: the planner gave no path for the mask file")
        region = np.load(file).astype(bool)
        if region.ndim == 2:
            region = np.repeat(region[None], t, axis=0)
    if region.shape != (t, h, w):
        raise ValueError(f"params.mask: the mask is {list(region.shape)}, the frames are [{t}, {h}, {w}]")
    return ~region if mask.get("keep", "outside") == "outside" else region
