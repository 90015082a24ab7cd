"""Parameters of the ``gen1`` method (Esser et al., 2023: structure- and content-guided video synthesis)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engines.common.params import MAX_STEPS, ParameterPatterns
from engines.common.structure import T_S_MAX

Box = Annotated[list[Annotated[float, Field(ge=0.0)]], Field(min_length=4, max_length=4)]


class MaskParams(BaseModel):
    """Masked video editing: which region the model keeps from the input."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    file: str | None = Field(
        None,
        description="A .npy of bools, [T, H, W] or [H, W] at the preprocessed frame size (True = the masked "
        "region); relative to the spec file.",
    )
    truth: bool = Field(False, description="A toy input: the masked region is every object of the scene.")
    boxes: list[Box] | None = Field(
        None, description="Boxes [x0, y0, x1, y1] in pixels of the preprocessed frames, the same on every frame."
    )
    keep: Literal["inside", "outside"] = Field(
        "outside",
        description="outside: keep everything outside the mask and regenerate inside it (edit the object); "
        "inside: keep the masked region and regenerate the rest (edit the surroundings).",
    )

    paste_back: bool = Field(
        True,
        description="After decoding, the kept region takes the input's own pixels (as diffusers' inpainting "
        "overlay does); false leaves the VAE's reconstruction there.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> MaskParams:
        given = [n for n, v in (("file", self.file), ("truth", self.truth or None), ("boxes", self.boxes)) if v]
        if len(given) != 1:
            raise ValueError(f"give exactly one of file, truth, boxes (got {', '.join(given) or 'none'})")
        for i, b in enumerate(self.boxes or []):
            if b[2] <= b[0] or b[3] <= b[1]:
                raise ValueError(f"boxes.{i}: {b} is empty; a box is [x0, y0, x1, y1] with x1 > x0 and y1 > y0")
        return self


class CustomizeParams(BaseModel):
    """Customization (the paper's Sec. 3.4): finetune on a few images of a subject, half of each batch
    from data like the model's own training data, so that the model keeps what it knew."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    images: list[str] = Field(..., min_length=1, description="Images of the subject (relative to the spec file).")
    prompt: str = Field(..., min_length=1, description="The caption of the subject images (e.g. 'a sks dog').")
    regularization: list[str] = Field(
        default_factory=list,
        description="Images or videos like the model's training data (relative to the spec file); each batch "
        "pairs a subject image with one of their frames, captioned by `regularization_prompt`.",
    )
    regularization_prompt: str = Field("", description="The caption of the regularization data ('' = none).")
    steps: int = Field(100, ge=1, le=100000, description="Optimisation steps.")
    lr: float = Field(1e-4, gt=0.0, le=1.0, description="AdamW learning rate.")
    trainable: ParameterPatterns = Field(
        default_factory=lambda: ["attn1", "attn2"],
        min_length=1,
        description="UNet parameters to tune, by name: substrings or `re:<regex>` (default: the spatial self- "
        "and cross-attention).",
    )


class Gen1Params(BaseModel):
    """Gen-1: generate from noise with the input's structure (depth at level t_s) and new content."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    structure: Literal["depth", "edges"] = Field(
        "depth", description="The structure representation extracted from the input (depth: the model's DPT)."
    )
    structure_level: int = Field(
        0,
        ge=0,
        le=T_S_MAX,
        description=f"t_s in 0..{T_S_MAX}: rounds of blur and 2x downsampling of the structure map; higher "
        "follows the input's shapes less and the prompt more.",
    )
    content: Literal["text", "image", "prior"] = Field(
        "text",
        description="Where the content comes from: text (the prompt through the text encoder), image "
        "(`content_image`'s CLIP embedding through the content projection: character replacement), prior "
        "(the prompt's CLIP text embedding mapped to an image embedding by the model's prior).",
    )
    content_image: str | None = Field(
        None, description="The reference image of content 'image' (relative to the spec file)."
    )
    steps: int = Field(25, ge=1, le=MAX_STEPS, description=f"DDIM steps from pure noise (at most {MAX_STEPS}).")
    guidance_scale: float = Field(
        5.0, ge=1.0, le=100.0, description="ω, classifier-free guidance on the content (1 = unguided)."
    )
    temporal_guidance: float = Field(
        1.0,
        ge=0.0,
        le=100.0,
        description="ω_t: 1 is the video model, 0 the per-frame image model (temporal layers off), > 1 "
        "extrapolates toward temporal consistency.",
    )
    eta: float = Field(0.0, ge=0.0, le=1.0, description="DDIM eta: 0 is deterministic DDIM.")
    mask: MaskParams | None = Field(None, description="Masked editing (omit to regenerate the whole frame).")
    customize: CustomizeParams | None = Field(
        None, description="Finetune on a subject first (stored as a delta, shared by every edit of that subject)."
    )

    @model_validator(mode="after")
    def _content(self) -> Gen1Params:
        if self.content == "image" and not self.content_image:
            raise ValueError("content 'image' needs `content_image`, the reference image")
        if self.content != "image" and self.content_image:
            raise ValueError(f"`content_image` is given, but content is {self.content!r}; set content: image")
        return self
