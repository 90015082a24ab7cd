"""Parameters of the ``videop2p`` method.

Top-level fields are what an edit's ``params:`` can override one by one (the
spec merges an edit's overrides key by key): the attention controls
(``mode``, ``cross_replace``, ``self_replace``, ``blend``, ``equalizer``,
``guidance``) are the per-edit part.  ``source_prompt``, ``finetune``,
``inversion`` and ``frame_attention`` feed the shared stages, so overriding
them in one edit gives that edit its own finetune/inversion.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from engines.common.params import MAX_FINETUNE_STEPS, MAX_FRAMES, MAX_STEPS, ParameterPatterns, Params

DEFAULT_TRAINABLE = ["attn1.to_q", "attn2.to_q", "attn_temp"]

_Unit = Annotated[float, Field(ge=0.0, le=1.0)]


#: Adam iterations per step of the null-text optimisation (the paper: 10).
MAX_INNER_STEPS = 1000

_Strict = Params  # unknown keys and non-finite floats are refused


class FinetuneParams(_Strict):
    """Initialisation tuning of the T2S model on the input clip with the source prompt."""

    steps: int = Field(
        500,
        ge=0,
        le=MAX_FINETUNE_STEPS,
        description=f"Optimisation steps (the paper: 500; 0 skips tuning; at most {MAX_FINETUNE_STEPS}).",
    )
    lr: float = Field(3e-5, gt=0.0, description="AdamW learning rate (the paper: 3e-5, constant).")
    trainable: ParameterPatterns = Field(
        default_factory=lambda: list(DEFAULT_TRAINABLE),
        min_length=1,
        description="Name patterns of the trained parameters (substring, or `re:<regex>`): by default the "
        "query projections of frame attention (attn1) and cross-attention (attn2), and the temporal attention.",
    )
    max_grad_norm: float = Field(1.0, ge=0.0, description="Gradient clipping norm (0 disables clipping).")


class InversionParams(_Strict):
    """DDIM inversion of the clip under the source prompt, then null-text optimisation."""

    steps: int = Field(
        50,
        ge=1,
        le=MAX_STEPS,
        description=f"DDIM steps of inversion and sampling (the paper: 50; at most {MAX_STEPS}, the model's "
        "training timesteps).",
    )
    null_text: Literal["shared", "per_frame", "fast"] = Field(
        "shared",
        description="shared: one null embedding per step for all frames (Video-P2P); per_frame: one per step "
        "and frame (ablation); fast: no optimisation (the initial null embedding at every step).",
    )
    inner_steps: int = Field(
        10,
        ge=1,
        le=MAX_INNER_STEPS,
        description=f"Adam iterations per step of the null-text optimisation (the paper: 10; at most "
        f"{MAX_INNER_STEPS}).",
    )
    lr: float = Field(1e-2, gt=0.0, description="Adam learning rate of the null-text optimisation (step 0).")
    lr_decay: _Unit = Field(0.5, description="Linear decay of that learning rate over the steps (fraction).")
    epsilon: float = Field(1e-5, ge=0.0, description="Early stop: a step ends when its loss is below epsilon + i*2e-5.")


class BlendParams(_Strict):
    """Local blend: edit only where the blend words attend; elsewhere keep the source branch."""

    source_words: list[str] = Field(..., min_length=1, description="Words of the source prompt marking the region.")
    target_words: list[str] | None = Field(
        None, description="Words of the target prompt marking the region (default: the source words)."
    )
    threshold: float = Field(0.3, ge=0.0, le=1.0, description="Mask threshold on the max-normalised attention map.")
    start: float = Field(
        0.2, ge=0.0, le=1.0, description="Fraction of the steps after which blending starts (maps keep accumulating)."
    )
    max_side: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="Use the cross-attention maps of layers whose side is at most this fraction of the latent "
        "side (the paper: SD's 16x16 maps, 0.25 of 64x64 latents).",
    )


class VideoP2PParams(_Strict):
    """Video-P2P (Liu et al., 2023): tuned T2S model, null-text inversion, decoupled-guidance attention control."""

    source_prompt: str = Field("", description="The prompt that describes the input clip (required).")
    frame_attention: Literal["first", "sparse_causal", "self"] = Field(
        "first",
        description="Keys/values of frame attention: first (Video-P2P: the first frame), sparse_causal "
        "(Tune-A-Video: first + previous frame), self (each frame alone; ablation).",
    )
    finetune: FinetuneParams = Field(default_factory=FinetuneParams, description="Initialisation tuning.")
    inversion: InversionParams = Field(default_factory=InversionParams, description="DDIM + null-text inversion.")
    guidance_scale: float = Field(
        7.5, ge=1.0, description="Classifier-free guidance scale (null-text optimisation is done for it)."
    )
    mode: Literal["replace", "refine", "reweight", "none"] = Field(
        "replace",
        description="Cross-attention control: replace (word swap; prompts with the same token count), refine "
        "(aligned tokens of prompts of different length), reweight (the source maps scaled by `equalizer`), "
        "none (no attention injection: the T2S + DDIM baseline).",
    )
    cross_replace: _Unit = Field(0.4, description="Fraction of the steps with cross-attention injection (paper: 0.4).")
    self_replace: _Unit = Field(0.4, description="Fraction of the steps with frame-attention injection.")
    blend: BlendParams | None = Field(None, description="Local blend (omit for a global edit).")
    equalizer: dict[str, Annotated[float, Field(ge=0.0)]] = Field(
        default_factory=dict, description="Attention reweighting: target-prompt word -> scale (e.g. {red: 2.0})."
    )
    guidance: Literal["decoupled", "shared"] = Field(
        "decoupled",
        description="decoupled: the source branch uses the optimised null embeddings, the target branch the "
        "initial one (Video-P2P); shared: both use the optimised ones.",
    )
    frame_chunk: int = Field(
        0,
        ge=0,
        le=MAX_FRAMES,
        description="Frames per frame-attention call without attention control (memory only; 0 = all).",
    )
