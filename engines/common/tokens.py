"""Prompt words and token counts for CLIP-style tokenizers, with no torch and, where the model folder
holds a ``tokenizer.json``, no transformers: validation (``recut validate``/``plan``/``run``) counts a
word swap's tokens with these before anything runs, and an import of torch or transformers would cost
that every command seconds.

:func:`load_tokenizer` reads ``<model>/tokenizer/tokenizer.json`` with the ``tokenizers`` library (the
same files and the same ids as transformers' ``CLIPTokenizer``, ``tests/test_videop2p.py``), and falls
back to ``CLIPTokenizer`` for a folder or hub id without one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

_WORD = re.compile(r"[^\w'-]+")


def prompt_words(prompt: str) -> list[str]:
    """The words of a prompt, lower-cased, punctuation stripped."""
    return [w for w in (_WORD.sub("", x).lower() for x in prompt.split()) if w]


def _pieces(tokenizer: Any, prompt: str) -> list[tuple[str, list[int]]]:
    """Each whitespace-separated piece of the prompt: its word (as :func:`prompt_words` gives it; '' for
    punctuation alone) and its tokens, punctuation included, as the text encoder sees them."""
    return [(_WORD.sub("", x).lower(), tokenizer.encode(x, add_special_tokens=False)) for x in prompt.split()]


def token_ids(tokenizer: Any, prompt: str) -> list[int]:
    """The prompt's tokens without BOS/EOS/padding."""
    return [t for _, toks in _pieces(tokenizer, prompt) for t in toks]


def token_count(tokenizer: Any, prompt: str) -> int:
    """Tokens of the prompt without BOS/EOS/padding."""
    return len(token_ids(tokenizer, prompt))


def _find(seq: list[int], part: list[int]) -> int | None:
    return next((i for i in range(len(seq) - len(part) + 1) if seq[i : i + len(part)] == part), None)


def word_token_indices(tokenizer: Any, prompt: str, word: str) -> list[int]:
    """Positions (in the padded sequence, BOS = 0) of every token of every occurrence of ``word`` (not
    of the punctuation written against it: "circle," is the tokens of "circle" and of ",")."""
    target = prompt_words(word)
    out: list[int] = []
    pos = 1
    for w, toks in _pieces(tokenizer, prompt):
        if [w] == target:
            own = tokenizer.encode(w, add_special_tokens=False)
            at = _find(toks, own)
            out.extend(range(pos + at, pos + at + len(own)) if at is not None else range(pos, pos + len(toks)))
        pos += len(toks)
    return [i for i in out if i < tokenizer.model_max_length]


class FileTokenizer:
    """A ``tokenizer.json`` through the ``tokenizers`` library, with the two things the helpers above use
    of a transformers tokenizer: ``encode(text, add_special_tokens=...)`` and ``model_max_length``."""

    def __init__(self, folder: Path):
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        config = folder / "tokenizer_config.json"
        settings = json.loads(config.read_text()) if config.is_file() else {}
        self.model_max_length = int(settings.get("model_max_length", 77))

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=add_special_tokens).ids)


def load_tokenizer(location: str, subfolder: str = "tokenizer") -> Any | None:
    """The tokenizer of a model folder (or hub id, from the local cache only); None when it is not on this
    machine."""
    folder = Path(location) / subfolder
    if (folder / "tokenizer.json").is_file():
        return FileTokenizer(folder)
    from transformers import CLIPTokenizer  # local: transformers takes seconds to import

    try:
        if Path(location).is_dir():
            return CLIPTokenizer.from_pretrained(location, subfolder=subfolder)
        return CLIPTokenizer.from_pretrained(location, subfolder=subfolder, local_files_only=True)
    except (OSError, ValueError):
        return None
