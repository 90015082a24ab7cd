"""Prompt-to-prompt attention control (Hertz et al., 2022) for a T2S model, as an attention hook.

:class:`AttentionController` is the ``hook`` of :class:`engines.common.inflate.T2SState`.
Sampling runs two branches in one batch, source (prompt 0) and target
(prompt 1), for unconditional and conditional text: ``[u_src, u_tgt, c_src,
c_tgt]``.  The controller edits the conditional half of every attention map
``[B*F*heads, N, M]``:

* **cross-attention**, for the first ``cross_replace`` fraction of the steps,
  the target's maps come from the source:
  ``replace`` (word swap, same token count: the source maps as they are),
  ``refine`` (prompts of different length: source maps through a token
  alignment, new target tokens keep their own maps), ``reweight`` (the source
  maps, aligned when the lengths differ, scaled by the equaliser); ``none`` injects nothing;
* the **equaliser** (``{word: scale}``, words of the target prompt) multiplies
  those words' columns of the target maps at every step;
* **self-attention** (frame attention), for the first ``self_replace`` fraction
  of the steps, the target takes the source's maps;
* **local blend**: the cross-attention maps of the blend words (source words
  in the source branch, target words in the target branch) are averaged over
  heads and over the layers whose maps are at most ``max_side`` of the latent
  side (P2P uses SD's 16x16 maps, 1/4 of its 64x64 latents), resized to the
  latent grid and accumulated over the steps so far, for each frame separately;
  from the ``start`` fraction of the steps on, ``mask = norm(maxpool3(map)) >
  threshold`` (union of the two branches) and the target latents outside the
  mask are replaced by the source latents after every step.
  :attr:`AttentionController.mask` is the last mask ``[F, h, w]``.  ``norm`` is
  min-max per frame (P2P divides by the max only; that equals min-max when the
  map's floor is ~0, as with SD, but a small model spreads a floor of
  attention over every pixel, and dividing by the max then selects everything).

:func:`p2p_sample` is the decoupled-guidance sampling loop of Video-P2P: the
source branch is guided with the optimised null-text embeddings of each step,
the target branch with the initial null embedding (``decoupled=False`` uses
the optimised ones for both, as image null-text P2P does).

Token helpers (:func:`word_token_indices`, :func:`token_count`,
:func:`refine_alignment`, :func:`equalizer_vector`) work for any CLIP-style
tokenizer: a word's tokens are found by tokenizing the prompt word by word.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F

from engines.common.ddim import ddim_step, ddim_timesteps
from engines.common.tokens import prompt_words, token_count, token_ids, word_token_indices

Mode = Literal["replace", "refine", "reweight", "none"]

__all__ = [
    "AttentionController",
    "BlendConfig",
    "ControlConfig",
    "equalizer_vector",
    "p2p_sample",
    "prompt_words",
    "refine_alignment",
    "token_count",
    "word_token_indices",
]


def refine_alignment(tokenizer: Any, source: str, target: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mapper [L], alphas [L])``: target token i takes source token ``mapper[i]`` where ``alphas[i] == 1``.

    Tokens are aligned with a longest-matching-blocks alignment of the two
    token sequences; target tokens with no source counterpart (the added
    words) get ``alphas = 0`` and keep their own attention.  BOS maps to BOS
    and the EOS/padding tail of the target maps onto the source's tail.
    """
    length = int(tokenizer.model_max_length)
    src, tgt = token_ids(tokenizer, source), token_ids(tokenizer, target)
    mapper = torch.arange(length)
    alphas = torch.zeros(length)
    alphas[0] = 1.0
    matcher = difflib.SequenceMatcher(a=src, b=tgt, autojunk=False)
    for blk in matcher.get_matching_blocks():
        for k in range(blk.size):
            i, j = 1 + blk.b + k, 1 + blk.a + k
            if i < length and j < length:
                mapper[i], alphas[i] = j, 1.0
    for i in range(1 + len(tgt), length):  # EOS + padding
        mapper[i] = min(1 + len(src) + (i - 1 - len(tgt)), length - 1)
        alphas[i] = 1.0
    return mapper, alphas


def equalizer_vector(tokenizer: Any, prompt: str, weights: dict[str, float]) -> torch.Tensor:
    """``[L]`` scale per token: ``weights[word]`` on that word's tokens, 1 elsewhere."""
    eq = torch.ones(int(tokenizer.model_max_length))
    for word, value in weights.items():
        for i in word_token_indices(tokenizer, prompt, word):
            eq[i] = float(value)
    return eq


@dataclass(frozen=True)
class BlendConfig:
    source_words: tuple[str, ...]
    target_words: tuple[str, ...]
    threshold: float = 0.3
    start: float = 0.2
    max_side: float = 0.5


@dataclass(frozen=True)
class ControlConfig:
    mode: Mode = "replace"
    cross_replace: float = 0.4
    self_replace: float = 0.4
    equalizer: dict[str, float] = field(default_factory=dict)
    blend: BlendConfig | None = None


class AttentionController:
    """The attention hook of one two-branch (source, target) edit; see the module docstring."""

    def __init__(
        self, config: ControlConfig, tokenizer: Any, source: str, target: str, steps: int, num_frames: int
    ) -> None:
        self.config = config
        self.steps = steps
        self.num_frames = num_frames
        self.step = 0
        self.cross_steps = round(config.cross_replace * steps)
        self.self_steps = round(config.self_replace * steps)
        n_src, n_tgt = token_count(tokenizer, source), token_count(tokenizer, target)
        if config.mode == "replace" and n_src != n_tgt:
            raise ValueError(
                f"mode 'replace' needs prompts with the same token count: {source!r} has {n_src}, "
                f"{target!r} has {n_tgt}"
            )
        length = int(tokenizer.model_max_length)
        if config.mode in ("refine", "reweight") and n_src != n_tgt:
            self.mapper, self.alphas = refine_alignment(tokenizer, source, target)
        else:
            self.mapper, self.alphas = torch.arange(length), torch.ones(length)
        self.equalizer = equalizer_vector(tokenizer, target, config.equalizer) if config.equalizer else None
        self.blend_idx: tuple[list[int], list[int]] | None = None
        if config.blend is not None:
            src_idx = sorted({i for w in config.blend.source_words for i in word_token_indices(tokenizer, source, w)})
            tgt_idx = sorted({i for w in config.blend.target_words for i in word_token_indices(tokenizer, target, w)})
            if not src_idx or not tgt_idx:
                raise ValueError(f"blend words {config.blend} are not in the prompts {source!r} / {target!r}")
            self.blend_idx = (src_idx, tgt_idx)
        self.latent_hw: tuple[int, int] = (0, 0)
        self._step_maps: torch.Tensor | None = None
        self._step_layers = 0
        self._sum_maps: torch.Tensor | None = None
        self._summed_steps = 0
        self.mask: torch.Tensor | None = None
        self.masks: list[torch.Tensor] = []

    # -- the hook ------------------------------------------------------------
    def wants(self, is_cross: bool) -> bool:
        """Whether this step needs the maps of this kind of layer (else attention runs unmaterialised)."""
        if not is_cross:
            return self.step < self.self_steps
        injecting = self.config.mode != "none" and self.step < self.cross_steps
        return injecting or self.blend_idx is not None or (self.equalizer is not None and self.config.mode != "none")

    @staticmethod
    def rowwise(is_cross: bool) -> bool:
        """Frame attention's control copies the source branch's maps row by row, so it may see them in
        blocks of query rows; cross-attention's local blend stores whole maps."""
        return not is_cross

    def __call__(self, probs: torch.Tensor, is_cross: bool, place: str, heads: int) -> torch.Tensor:
        f = self.num_frames
        total, n, m = probs.shape
        b = total // (f * heads)
        if b % 2 or b < 4:
            raise ValueError(f"attention control expects [uncond x P, cond x P] with P >= 2 prompts, got batch {b}")
        x = probs.view(b, f, heads, n, m)
        cond = x[b // 2 :]
        base, tgt = cond[0], cond[1:]
        if is_cross:
            tgt = self._cross(base, tgt)
            if self.blend_idx is not None:
                self._store(torch.cat([base[None], tgt]), n)
        elif self.step < self.self_steps:
            tgt = base[None].expand_as(tgt)
        x = torch.cat([x[: b // 2], base[None], tgt])
        return x.reshape(total, n, m)

    def _cross(self, base: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        mode = self.config.mode
        dev = base.device
        if mode != "none" and self.step < self.cross_steps:
            mapped = base[..., self.mapper.to(dev)][None]
            if mode == "refine":
                a = self.alphas.to(dev, base.dtype)
                tgt = mapped * a + tgt * (1 - a)
            else:  # replace, reweight
                tgt = mapped.expand_as(tgt)
        if self.equalizer is not None and mode != "none":
            tgt = tgt * self.equalizer.to(dev, base.dtype)
        return tgt

    def _store(self, cond: torch.Tensor, n: int) -> None:
        """Accumulate the blend words' maps of this layer: ``[2, F, h, w]`` on the latent grid."""
        assert self.blend_idx is not None
        h, w = self.latent_hw
        scale = (h * w / n) ** 0.5
        hh, ww = round(h / scale), round(w / scale)
        assert self.config.blend is not None
        if hh > self.config.blend.max_side * h + 1e-6:
            return
        src_idx, tgt_idx = self.blend_idx
        mean = cond.mean(dim=2)  # over heads: [P, F, N, M]
        maps = torch.stack([mean[0][..., src_idx].sum(-1), mean[-1][..., tgt_idx].sum(-1)])  # [2, F, N]
        maps = maps.reshape(2 * self.num_frames, 1, hh, ww).float()
        if (hh, ww) != (h, w):
            maps = F.interpolate(maps, size=(h, w), mode="bilinear", align_corners=False)
        maps = maps.view(2, self.num_frames, h, w)
        self._step_maps = maps if self._step_maps is None else self._step_maps + maps
        self._step_layers += 1

    # -- the sampling loop's calls ------------------------------------------
    def begin_step(self, i: int, latent_hw: tuple[int, int]) -> None:
        self.step = i
        self.latent_hw = latent_hw
        self._step_maps, self._step_layers = None, 0

    def end_step(self, latents: torch.Tensor) -> torch.Tensor:
        """Local blend of ``latents [P, C, F, h, w]`` after the DDIM step of this step."""
        cfg = self.config.blend
        if cfg is None:
            return latents
        if self._step_maps is None:
            raise ValueError(
                f"local blend: no cross-attention layer has maps of at most {cfg.max_side} of the latent side "
                f"{self.latent_hw}; raise blend.max_side"
            )
        step_avg = self._step_maps / self._step_layers
        self._sum_maps = step_avg if self._sum_maps is None else self._sum_maps + step_avg
        self._summed_steps += 1
        if self.step < round(cfg.start * self.steps):
            return latents
        maps = self._sum_maps / self._summed_steps  # averaged over the steps so far, per frame
        maps = F.max_pool2d(maps, kernel_size=3, stride=1, padding=1)
        lo = maps.flatten(2).amin(-1)[..., None, None]
        hi = maps.flatten(2).amax(-1)[..., None, None]
        mask = (((maps - lo) / (hi - lo).clamp_min(1e-12)) > cfg.threshold).any(
            dim=0
        )  # [F, h, w], union of source and target words
        self.mask = mask
        self.masks.append(mask)
        m = mask[None, None].to(latents.dtype)  # [1, 1, F, h, w]
        return torch.cat([latents[:1], latents[:1] + m * (latents[1:] - latents[:1])])


def _per_frame(text: torch.Tensor, num_frames: int) -> torch.Tensor:
    """``[1, L, D]`` or ``[1, F, L, D]`` -> ``[1, F, L, D]``."""
    return text if text.ndim == 4 else text[:, None].expand(-1, num_frames, -1, -1)


@torch.no_grad()
def p2p_sample(
    model: Any,
    scheduler: Any,
    z_t: torch.Tensor,
    steps: int,
    source_cond: torch.Tensor,
    target_cond: torch.Tensor,
    null_steps: torch.Tensor | Sequence[torch.Tensor],
    null_initial: torch.Tensor,
    guidance: float,
    controller: AttentionController | None,
    decoupled: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Two-branch DDIM sampling from ``z_T [1,C,F,h,w]``; returns ``[2, C, F, h, w]`` (source, target).

    ``model`` is a :class:`~engines.common.inflate.T2SUNet`; ``null_steps[i]`` is the
    (optimised) null embedding of step ``i`` (``[L, D]`` or ``[F, L, D]``);
    ``null_initial`` ``[1, L, D]`` the target branch's null when ``decoupled``.
    """
    f = int(z_t.shape[2])
    h, w = int(z_t.shape[3]), int(z_t.shape[4])
    x = z_t.repeat(2, 1, 1, 1, 1)
    state = model.state
    state.hook = controller
    try:
        for i, t in enumerate(ddim_timesteps(scheduler, steps)):
            if controller is not None:
                controller.begin_step(i, (h, w))
            u_src = _per_frame(null_steps[i][None], f)
            u_tgt = _per_frame(null_initial, f) if decoupled else u_src
            text = torch.cat([u_src, u_tgt, _per_frame(source_cond, f), _per_frame(target_cond, f)])
            eps = model(torch.cat([x, x]), t, text).sample
            e_u, e_c = eps.chunk(2)
            x = ddim_step(scheduler, e_u + guidance * (e_c - e_u), t, x, steps)
            if controller is not None:
                x = controller.end_step(x)
            if progress is not None:
                progress(i + 1, steps)
    finally:
        state.hook = None
    return x
