"""Parameters of the ``revideo`` method (Mou et al., 2024: local content and motion editing)."""

from __future__ import annotations

import itertools
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engines.common.params import MAX_STEPS

Point = Annotated[list[float], Field(min_length=2, max_length=2)]
PathPoint = Annotated[list[float], Field(min_length=3, max_length=3)]
Box = Annotated[list[Annotated[float, Field(ge=0.0)]], Field(min_length=4, max_length=4)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class AreaMask(_Strict):
    """Where an area is: exactly one of ``file``, ``polygon``, ``box``, ``truth``; the same region on
    every frame, so it must cover everywhere the edited content goes."""

    file: str | None = Field(
        None,
        description="A .npy of bools, [H, W] or [T, H, W] at the preprocessed frame size (True = the area); "
        "relative to the spec file. Any shape: an irregular mask.",
    )
    polygon: list[Point] | None = Field(
        None, min_length=3, description="Polygon vertices [[x, y], ...] in pixels of the preprocessed frames."
    )
    box: Box | None = Field(None, description="[x0, y0, x1, y1] in pixels of the preprocessed frames.")
    truth: int | None = Field(
        None, ge=0, le=2, description="A toy input: the area object k covers over the clip (its trail)."
    )
    dilate: int = Field(0, ge=0, le=64, description="Grow the area by this many pixels.")

    @model_validator(mode="after")
    def _one(self) -> AreaMask:
        given = [n for n in ("file", "polygon", "box", "truth") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of file, polygon, box, truth (got {', '.join(given) or 'none'})")
        if self.box is not None and (self.box[2] <= self.box[0] or self.box[3] <= self.box[1]):
            raise ValueError(f"box {self.box} is empty; a box is [x0, y0, x1, y1] with x1 > x0 and y1 > y0")
        return self


class SDEditContent(_Strict):
    """Frame 0 edited by SDEdit's image variant (the model's ``image`` role) toward a prompt."""

    prompt: str = Field(..., min_length=1, description="What frame 0 should show.")
    negative_prompt: str = Field("", description="The unconditional text of guidance.")
    strength: float = Field(0.6, gt=0.0, le=1.0, description="How far frame 0 is noised before denoising.")
    steps: int = Field(25, ge=1, le=MAX_STEPS, description=f"DDIM steps at strength 1 (at most {MAX_STEPS}).")
    guidance_scale: float = Field(7.5, ge=1.0, le=100.0, description="Classifier-free guidance.")


class AreaContent(_Strict):
    """The area's new content, as an edited first frame: exactly one of ``image``, ``sdedit``."""

    image: str | None = Field(
        None,
        description="An edited frame 0 (an image at the preprocessed frame size, relative to the spec file); "
        "only its pixels inside the area are used.",
    )
    sdedit: SDEditContent | None = Field(None, description="Make the edited frame 0 with SDEdit from a prompt.")

    @model_validator(mode="after")
    def _one(self) -> AreaContent:
        given = [n for n in ("image", "sdedit") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of image, sdedit (got {', '.join(given) or 'none'})")
        return self


class Area(_Strict):
    """One edit area: its mask, its content (an edited first frame) and its motion."""

    mask: AreaMask = Field(..., description="Where the area is (the same region on every frame).")
    content: AreaContent | None = Field(None, description="New content (omit to keep the input's).")
    motion: Literal["keep", "trajectory", "none"] = Field(
        "keep",
        description="keep: the input's own tracks inside the area; trajectory: the drawn `trajectory`; "
        "none: no trajectory (the base model's own motion).",
    )
    trajectory: list[PathPoint] | None = Field(
        None,
        min_length=1,
        description="motion 'trajectory': [[frame, x, y], ...], frames increasing, pixels of the "
        "preprocessed frames; linear between the points. The first point is on the content to move.",
    )

    @model_validator(mode="after")
    def _motion(self) -> Area:
        if self.motion == "trajectory" and not self.trajectory:
            raise ValueError("motion 'trajectory' needs `trajectory`, a list of [frame, x, y] points")
        if self.motion != "trajectory" and self.trajectory:
            raise ValueError(f"`trajectory` is given, but motion is {self.motion!r}; set motion: trajectory")
        if self.content is None and self.motion == "none":
            raise ValueError("the area has neither content nor motion: give `content`, or motion keep/trajectory")
        if self.trajectory:
            frames = [p[0] for p in self.trajectory]
            if any(b <= a for a, b in itertools.pairwise(frames)):
                raise ValueError(f"trajectory frames must increase; got {frames}")
        return self


class Window(_Strict):
    """Sliding windows for clips longer than the base model's frame count."""

    frames: int | None = Field(
        None, ge=2, le=128, description="Frames per window (default: the base UNet's num_frames)."
    )
    overlap: int = Field(
        1,
        ge=1,
        le=127,
        description="Frames a window shares with the previous one; the previous window's frame at the "
        "new window's start is its reference (first) frame.",
    )


class Tracking(_Strict):
    """The `track` stage and the sampling of the input's tracks for motion 'keep'."""

    stride: int = Field(4, ge=1, le=64, description="Grid spacing of the tracked points, in pixels.")
    window: int = Field(15, ge=5, le=63, description="Lucas-Kanade window size, in pixels.")
    max_tracks: int = Field(10, ge=1, le=1000, description="At most this many tracks per area (the paper: 10).")
    sigma: float = Field(2.0, ge=0.0, le=32.0, description="Gaussian filter of the trajectory maps, in pixels.")


class ReVideoParams(_Strict):
    """ReVideo: regenerate the video from its edited first frame with the unedited region as content
    and trajectories as motion (an SVD-class image-to-video model with a control module)."""

    areas: list[Area] = Field(..., min_length=1, max_length=8, description="The edit areas.")
    steps: int = Field(25, ge=1, le=1000, description="Euler steps (EDM).")
    min_guidance: float = Field(1.0, ge=1.0, le=100.0, description="Guidance on the first frame.")
    max_guidance: float = Field(3.0, ge=1.0, le=100.0, description="Guidance on the last frame (linear).")
    fps: int = Field(7, ge=1, le=120, description="The fps time id SVD is conditioned on.")
    motion_bucket_id: int = Field(127, ge=0, le=1023, description="SVD's motion bucket time id.")
    noise_aug_strength: float = Field(0.02, ge=0.0, le=1.0, description="Noise added to the first frame.")
    control: bool = Field(
        True, description="false: the base image-to-video model from the edited first frame (no control module)."
    )
    control_scale: float = Field(1.0, ge=0.0, le=10.0, description="Scale of the control module's residuals.")
    window: Window = Field(default_factory=Window, description="Sliding windows for clips longer than a window.")
    tracking: Tracking = Field(
        default_factory=Tracking, description="The track stage's grid, and how an area's tracks become maps."
    )
    decode_chunk: int = Field(8, ge=1, le=128, description="Frames the VAE decodes at once.")

    @model_validator(mode="after")
    def _guidance(self) -> ReVideoParams:
        if self.max_guidance < self.min_guidance:
            raise ValueError(f"max_guidance {self.max_guidance} is below min_guidance {self.min_guidance}")
        return self
