"""Parameters of the ``dreamix`` method.

Flat on purpose: every parameter can be swept (``sweep: {params.strength: [...],
params.finetune_steps: [...]}``) and every stage declares exactly which ones it reads.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from engines.common.params import (
    MAX_FINETUNE_STEPS,
    MAX_FRAMES,
    MAX_STEPS,
    GuidanceInterval,
    Params,
    check_guided,
    guidance_interval_field,
)

#: Largest cascade stage side (pixels): a 8192x8192 latent already exceeds any GPU's memory.
MAX_SIDE = 8192

#: The paper's (alpha, finetune steps) pairs: alpha = 1 with 64 steps, alpha = 0.35 with
#: 200-300 steps, alpha = 0 with 50-150 steps (full-size models, lr 6e-6).
PAPER_STEPS = {1.0: 64, 0.35: 250, 0.0: 100}  # 250: the middle of 200-300


class KeyFrame(Params):
    """One key frame of a camera path (the camera pose at time ``t``)."""

    t: float = Field(..., ge=0.0, le=1.0, description="Time of the key frame in [0, 1] (0 = first frame).")
    x: float = Field(0.0, ge=-1.0, le=1.0, description="Horizontal camera offset, a fraction of the width.")
    y: float = Field(0.0, ge=-1.0, le=1.0, description="Vertical camera offset, a fraction of the height.")
    zoom: float = Field(1.0, gt=0.1, le=10.0, description="Zoom factor (>1 moves in).")
    rotate: float = Field(0.0, ge=-180.0, le=180.0, description="Camera roll in degrees.")
    tilt: float = Field(
        0.0,
        ge=-0.5,
        le=0.5,
        description="Perspective tilt: the top edge shrinks (>0) or grows (<0) by this fraction of the width.",
    )


class Animation(Params):
    """How one image becomes a coarse video (image animation mode)."""

    kind: Literal["replicate", "pan", "zoom", "path"] = Field(
        "pan",
        description="replicate: the image on every frame; pan: slide the camera in `direction` by "
        "`amount`; zoom: zoom in by `zoom`; path: follow the `path` key frames. Pixels outside "
        "the image are filled by reflection padding.",
    )
    direction: Literal["left", "right", "up", "down"] = Field(
        "right", description="Pan direction of the camera (the content moves the other way)."
    )
    amount: float = Field(0.25, ge=0.0, le=1.0, description="Pan distance over the clip, a fraction of the size.")
    zoom: float = Field(1.3, gt=0.1, le=10.0, description="Final zoom factor of `kind: zoom`.")
    path: list[KeyFrame] = Field(
        default_factory=list,
        description="Camera key frames for `kind: path` (at least two; times strictly increasing); "
        "interpolated with a smooth (cosine) ease between key frames.",
    )

    @model_validator(mode="after")
    def _path(self) -> Animation:
        if self.kind == "path":
            if len(self.path) < 2:
                raise ValueError(f"kind 'path' needs at least two key frames in `path` (got {len(self.path)})")
            ts = [k.t for k in self.path]
            if any(b <= a for a, b in itertools.pairwise(ts)):
                raise ValueError(f"path key frame times must be strictly increasing (got {ts})")
        return self


class CascadeStage(Params):
    """One stage of the sampling cascade: the base text-to-video model, or a video super-resolution model."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)  # merged into Params'

    role: str = Field("video", description="Model role (component of the model profile) holding this stage's weights.")
    kind: Literal["t2v", "v2v"] = Field(
        "t2v",
        description="t2v: the base model (first stage only); v2v: video-to-video super-resolution "
        "conditioned on the prompt and the previous stage's output.",
    )
    width: int = Field(..., gt=0, le=MAX_SIDE, description=f"Output width of this stage (at most {MAX_SIDE}).")
    height: int = Field(..., gt=0, le=MAX_SIDE, description=f"Output height of this stage (at most {MAX_SIDE}).")
    frames: int = Field(
        ..., gt=0, le=MAX_FRAMES, description=f"Output frame count of this stage (at most {MAX_FRAMES})."
    )
    from_: (
        tuple[
            Annotated[int, Field(gt=0, le=MAX_SIDE)],
            Annotated[int, Field(gt=0, le=MAX_SIDE)],
            Annotated[int, Field(gt=0, le=MAX_FRAMES)],
        ]
        | None
    ) = Field(
        None,
        alias="from",
        description="v2v: the [width, height, frames] it takes from the previous stage (must equal that "
        "stage's output).",
    )
    strength: float = Field(0.5, ge=0.0, le=1.0, description="v2v: noise strength applied to the upscaled input.")


class DreamixParams(Params):
    """Dreamix (Molad et al., 2023): a video diffusion model as a general video editor."""

    mode: Literal["edit", "animate", "subject"] = Field(
        "edit",
        description="edit: a video (or toy scene) to edit; animate: one image made into a coarse video, "
        "then edited; subject: an image collection of one subject, then generation from text alone.",
    )
    strength: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Noise strength s of the degradation: 0 = no noise (the degraded input through the "
        "VAE), 1 = pure noise (plain text-to-video). Default 0.7; always 1 in subject mode.",
    )
    steps: int = Field(
        30,
        ge=1,
        le=MAX_STEPS,
        description=f"DDIM steps of the full schedule (at most {MAX_STEPS}, the model's training timesteps); "
        "the last round(steps*s) run.",
    )
    guidance_scale: float = Field(7.5, ge=1.0, description="Classifier-free guidance scale (1 disables it).")
    guidance_interval: GuidanceInterval = guidance_interval_field()
    eta: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Stochastic DDIM eta of the corruption inversion (0 deterministic, 1 DDPM-like); the "
        "paper re-adds noise of about half the removed magnitude.",
    )
    base_frames: int | None = Field(
        None,
        gt=0,
        le=MAX_FRAMES,
        description="Frames of the base sample (default: the base model's, from the profile).",
    )
    chunk_frames: int | None = Field(
        None,
        gt=0,
        le=MAX_FRAMES,
        description="Denoise at most this many frames at a time and concatenate (long outputs); "
        "default: the whole clip at once.",
    )
    cascade: Literal["profile", "none"] | list[CascadeStage] = Field(
        "profile",
        description="Sampling cascade: `profile` (the model profile's stages: base model, then its "
        "super-resolution stages), `none` (the base model only) or an explicit list of stages "
        "(base first); stage resolutions must chain.",
    )
    finetune_steps: int | None = Field(
        None,
        ge=0,
        le=MAX_FINETUNE_STEPS,
        description=f"Finetune steps (0 = no finetuning; at most {MAX_FINETUNE_STEPS}). Default: the paper's "
        "pair for `alpha` (alpha 1: 64, 0 < alpha < 1: 250, alpha 0: 100).",
    )
    alpha: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Weight of the video objective in mixed finetuning (1 - alpha: the frames objective, "
        "frames as an unordered set). Default 0.35 for edit, 0 for animate and subject.",
    )
    lr: float = Field(6e-6, gt=0.0, le=1.0, description="Finetune learning rate (AdamW).")
    finetune_method: Literal["full", "lora"] = Field(
        "full", description="full: every UNet weight; lora: low-rank adapters on the attention projections (memory)."
    )
    lora_rank: int = Field(4, ge=1, le=256, description="Rank of the LoRA adapters (finetune_method: lora).")
    finetune_prompt: str | None = Field(
        None,
        description="Text describing the input, used while finetuning (the rare token is prepended). "
        "Default: the toy scene's caption; required for other inputs.",
    )
    rare_token: str = Field(
        "sks",
        description="Rare token added to the finetune prompt; put it in the edit prompts (at the same "
        "place) to refer to the finetuned subject/video.",
    )
    rare_token_position: Literal["start", "end"] = Field(
        "start",
        description="Where the rare token goes in the finetune prompt: start ('sks a dog', as in the paper) "
        "or end ('a dog sks': the description's own token states stay as the causal text encoder read "
        "them in training; the toy profile's word-level tokenizer splits unknown words into characters).",
    )
    animation: Animation = Field(default_factory=Animation, description="Image animation (mode: animate).")
    frame_batch: int = Field(
        8, ge=1, le=MAX_FRAMES, description="Frames per VAE call (memory only; results do not depend on it)."
    )

    @model_validator(mode="after")
    def _guided(self) -> DreamixParams:
        check_guided(self.guidance_interval, sample_strength(self.mode, self.strength), self.guidance_scale)
        return self

    def filled(self) -> DreamixParams:
        """A copy with the mode-dependent defaults filled in (see :func:`fill_defaults`)."""
        alpha, strength, steps = fill_defaults(self.mode, self.alpha, self.strength, self.finetune_steps)
        return self.model_copy(update={"alpha": alpha, "strength": strength, "finetune_steps": steps})


def with_rare_token(text: str, token: str, position: str = "start") -> str:
    """``text`` with the rare ``token`` at its ``position`` (``"start"`` or ``"end"``; see
    :attr:`DreamixParams.rare_token_position`), for the finetune prompt and the edit prompts alike."""
    token = token.strip()
    return (f"{text} {token}" if position == "end" else f"{token} {text}").strip()


def sample_strength(mode: str, strength: float | None) -> float:
    """The strength the sample stage runs: the spec's (default 0.7), and always 1 in subject mode
    (a subject spec with another strength is refused by the engine's ``check_spec``)."""
    return 1.0 if mode == "subject" else fill_defaults(mode, None, strength, None)[1]


def fill_defaults(
    mode: str, alpha: float | None, strength: float | None, finetune_steps: int | None
) -> tuple[float, float, int]:
    """``(alpha, strength, finetune_steps)`` with the mode-dependent defaults for the ``None`` ones.

    The defaults stay ``None`` in the spec (and in the cache keys), so a sweep over ``alpha``
    gets the paper's step count for each alpha; the stages fill them in here.
    """
    a = float(alpha) if alpha is not None else (0.35 if mode == "edit" else 0.0)
    s = float(strength) if strength is not None else (1.0 if mode == "subject" else 0.7)
    if finetune_steps is not None:
        n = int(finetune_steps)
    else:
        n = PAPER_STEPS[1.0] if a >= 1.0 else PAPER_STEPS[0.0] if a <= 0.0 else PAPER_STEPS[0.35]
    return a, s, n
