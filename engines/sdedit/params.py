"""Parameters of the ``sdedit`` method."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from engines.common.params import (
    MAX_FRAMES,
    MAX_STEPS,
    GuidanceInterval,
    Params,
    check_guided,
    guidance_interval_field,
)


class SDEditParams(Params):
    """SDEdit (Meng et al., 2022): noise the input part-way, then denoise toward the prompt."""

    strength: float = Field(
        0.6,
        ge=0.0,
        le=1.0,
        description="Noise strength s: 0 returns the input unchanged (through the VAE), "
        "1 starts from pure noise (text-to-video/image). Higher = further from the input.",
    )
    steps: int = Field(
        20,
        ge=1,
        le=MAX_STEPS,
        description=f"DDIM steps of the full schedule (at most {MAX_STEPS}, the model's training timesteps); "
        "SDEdit runs the last round(steps*strength) of them.",
    )
    guidance_scale: float = Field(7.5, ge=1.0, description="Classifier-free guidance scale (1 disables guidance).")
    guidance_interval: GuidanceInterval = guidance_interval_field()
    eta: float = Field(0.0, ge=0.0, le=1.0, description="DDIM eta: 0 is deterministic DDIM, 1 is DDPM-like.")
    variant: Literal["image", "video"] = Field(
        "image",
        description="image: the SD-1.5-layout UNet2D applied frame by frame with the same seed "
        "noise for every frame (model role `image`); video: the ModelScope-layout "
        "UNet3DConditionModel over the whole clip (model role `video`).",
    )
    frame_batch: int = Field(
        8,
        ge=1,
        le=MAX_FRAMES,
        description="Frames per UNet/VAE call in the image variant (memory only; results do not depend on it).",
    )

    @model_validator(mode="after")
    def _guided(self) -> SDEditParams:
        check_guided(self.guidance_interval, self.strength, self.guidance_scale)
        return self
