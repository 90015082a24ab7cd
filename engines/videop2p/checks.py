"""Cross-field checks of a ``videop2p`` spec, run by ``recut validate``/``recut run`` before any compute.

For every edit (its ``params`` merged over the spec's):

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

from engines.common.checks import input_shape, model_location, size_issues, size_multiple
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


def check_spec(spec: Any) -> list[tuple[str, str]]:
    _t, h, w = input_shape(spec)
    issues: list[tuple[str, str]] = size_issues(spec, size_multiple(spec, "image"), h, w)
    base = spec.params.model_dump()
    loc = model_location(spec, "image")  # nothing is built or downloaded to validate
    tok = _tokenizer(loc) if loc is not None else None
    src = base["source_prompt"]
    if not src.strip():
        return [("params.source_prompt", "the source prompt is empty; give the text that describes the input clip")]
    src_words = set(prompt_words(src))
    for i, edit in enumerate(spec.edits):
        merged = VideoP2PParams.model_validate({**base, **edit.params})
        over = set(edit.params)

        def where(key: str, over: set[str] = over, i: int = i) -> str:
            return f"edits.{i}.params.{key}" if key in over else f"params.{key}"

        if "source_prompt" in over:
            src = merged.source_prompt
            src_words = set(prompt_words(src))
        tgt = edit.prompt
        tgt_words = set(prompt_words(tgt))
        if merged.mode == "replace":
            n_src, n_tgt = _count(tok, src), _count(tok, tgt)
            if n_src != n_tgt:
                issues.append(
                    (
                        f"edits.{i}.prompt",
                        f"mode 'replace' (word swap) needs prompts with the same token count: the source prompt "
                        f"{src!r} has {n_src} tokens, the target {tgt!r} has {n_tgt}; use `mode: refine` for "
                        "prompts of different length",
                    )
                )
        if merged.mode == "reweight" and not merged.equalizer:
            issues.append((where("mode"), "mode 'reweight' needs an `equalizer` ({word: scale})"))
        if merged.blend is not None:
            for j, w in enumerate(merged.blend.source_words):
                if not _in(w, src_words):
                    issues.append(
                        (f"{where('blend')}.source_words.{j}", f"blend word {w!r} is not in the source prompt {src!r}")
                    )
            for j, w in enumerate(merged.blend.target_words or []):
                if not _in(w, tgt_words):
                    issues.append(
                        (f"{where('blend')}.target_words.{j}", f"blend word {w!r} is not in the target prompt {tgt!r}")
                    )
            if merged.blend.target_words is None:
                for j, w in enumerate(merged.blend.source_words):
                    if not _in(w, tgt_words):
                        issues.append(
                            (
                                f"{where('blend')}.source_words.{j}",
                                f"blend word {w!r} is not in the target prompt {tgt!r}; give `target_words`",
                            )
                        )
        if spec.evaluation.mask == "engine" and merged.blend is None:
            issues.append(
                (
                    "evaluate.mask",
                    f"`mask: engine` needs the local-blend mask, but edit {spec.edit_names()[i]!r} has no `blend`; "
                    "add one, or use `mask: truth` or `auto`",
                )
            )
        for w in merged.equalizer:
            if not _in(w, tgt_words):
                issues.append(
                    (f"{where('equalizer')}.{w}", f"equaliser word {w!r} is not in the target prompt {tgt!r}")
                )
    return issues
