"""Cross-field checks of a ``videop2p`` spec, run by ``recut validate``/``recut run`` before any compute.

For every edit at every sweep point (its ``params`` merged over the spec's, the point's values set):

1. the source prompt is given;
2. ``mode: replace`` (word swap) needs source and target prompts with the same
   token count (counted with the model's tokenizer);
3. ``mode: reweight`` needs an ``equalizer``;
4. blend source words are in the source prompt, blend target words in the
   target prompt;
5. equaliser words are in the target prompt;
6. ``evaluate.mask: engine`` has a mask to read (the edit uses local blend).

Ranges (thresholds and fractions in [0, 1]) are checked by the params model.
Each problem names the field where the value was written (the edit's
override, or the spec's ``params``) and quotes the value.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from engines.common.checks import (
    edit_params,
    input_shape,
    model_config,
    model_location,
    size_issues,
    size_multiple,
)
from engines.common.tokens import load_tokenizer, prompt_words, token_count
from engines.videop2p.params import VideoP2PParams


@lru_cache(maxsize=4)
def _tokenizer(location: str) -> Any:
    """The model's tokenizer, or None when it is not on this machine (words are counted instead)."""
    return load_tokenizer(location)


def _count(tok: Any, prompt: str) -> int:
    return token_count(tok, prompt) if tok is not None else len(prompt_words(prompt))


def _in(word: str, words: set[str]) -> bool:
    found = prompt_words(word)
    return len(found) == 1 and found[0] in words


def _cross_attention_sides(spec: Any, h: int | None) -> list[int]:
    """``[latent height, the height of each level's cross-attention maps...]`` of the spec's model at
    frame height ``h`` (the controller blends with the maps of at most ``max_side`` of the latent); empty
    when validation cannot read the configs here."""
    unet, vae = model_config(spec, "image", "unet"), model_config(spec, "image", "vae")
    if unet is None or vae is None or h is None:
        return []
    latent = side = h // 2 ** (len(vae["block_out_channels"]) - 1)
    sides = [latent]
    kinds = list(unet["down_block_types"])
    for k, kind in enumerate(kinds):
        if "CrossAttn" in kind:
            sides.append(side)
        if k < len(kinds) - 1:
            side = -(-side // 2)  # a stride-2 convolution rounds up
    if "CrossAttn" in (unet.get("mid_block_type") or "UNetMidBlock2DCrossAttn"):
        sides.append(side)
    return sides


def check_spec(spec: Any) -> list[tuple[str, str]]:
    _t, h, w = input_shape(spec)
    issues: dict[tuple[str, str], None] = dict.fromkeys(size_issues(spec, size_multiple(spec, "image"), h, w))
    loc = model_location(spec, "image")  # nothing is built or downloaded to validate
    tok = _tokenizer(loc) if loc is not None else None
    sides = _cross_attention_sides(spec, h)
    for i, params, where_set in edit_params(spec, VideoP2PParams):
        merged = VideoP2PParams.model_validate(params)

        def where(key: str, where_set: dict[str, str] = where_set) -> str:
            return where_set.get(key, f"params.{key}")

        src = merged.source_prompt
        if not src.strip():
            problem = "the source prompt is empty; give the text that describes the input clip"
            issues[(where("source_prompt"), problem)] = None
            continue
        src_words = set(prompt_words(src))
        tgt = spec.edits[i].prompt
        tgt_words = set(prompt_words(tgt))
        if merged.mode == "replace":
            n_src, n_tgt = _count(tok, src), _count(tok, tgt)
            if n_src != n_tgt:
                problem = (
                    f"mode 'replace' (word swap) needs prompts with the same token count: the source prompt "
                    f"{src!r} has {n_src} tokens, the target {tgt!r} has {n_tgt}; use `mode: refine` for "
                    "prompts of different length"
                )
                swept = where("mode").startswith("sweep.")  # else the prompt is what to change
                issues[(where("mode") if swept else f"edits.{i}.prompt", problem)] = None
        if merged.mode == "reweight" and not merged.equalizer:
            issues[(where("mode"), "mode 'reweight' needs an `equalizer` ({word: scale})")] = None
        if merged.blend is not None:
            steps, start = merged.inversion.steps, merged.blend.start
            if round(start * steps) >= steps:
                problem = f"{start} of {steps} steps starts blending after the last step: no step would blend"
                issues[(f"{where('blend')}.start", problem)] = None
            if sides and not any(s <= merged.blend.max_side * sides[0] + 1e-6 for s in sides[1:]):
                problem = (
                    f"{merged.blend.max_side}: no cross-attention layer has maps that small (their sides are "
                    f"{sorted(set(sides[1:]))} of the latent's {sides[0]}); raise it to at least "
                    f"{min(sides[1:]) / sides[0]:.3g}"
                )
                issues[(f"{where('blend')}.max_side", problem)] = None
            for j, w in enumerate(merged.blend.source_words):
                if not _in(w, src_words):
                    problem = f"blend word {w!r} is not in the source prompt {src!r}"
                    issues[(f"{where('blend')}.source_words.{j}", problem)] = None
            for j, w in enumerate(merged.blend.target_words or []):
                if not _in(w, tgt_words):
                    problem = f"blend word {w!r} is not in the target prompt {tgt!r}"
                    issues[(f"{where('blend')}.target_words.{j}", problem)] = None
            if merged.blend.target_words is None:
                for j, w in enumerate(merged.blend.source_words):
                    if not _in(w, tgt_words):
                        problem = f"blend word {w!r} is not in the target prompt {tgt!r}; give `target_words`"
                        issues[(f"{where('blend')}.source_words.{j}", problem)] = None
        if spec.evaluation.mask == "engine" and merged.blend is None:
            problem = (
                f"`mask: engine` needs the local-blend mask, but edit {spec.edit_names()[i]!r} has no `blend`; "
                "add one, or use `mask: truth` or `auto`"
            )
            issues[("evaluate.mask", problem)] = None
        for w in merged.equalizer:
            if not _in(w, tgt_words):
                problem = f"equaliser word {w!r} is not in the target prompt {tgt!r}"
                issues[(f"{where('equalizer')}.{w}", problem)] = None
    return list(issues)
