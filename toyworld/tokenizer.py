"""A word-level CLIPTokenizer for toy captions, built offline (no download).

Vocabulary: the 256 byte-level characters and their ``</w>`` forms (so any text
still tokenizes), the intermediate symbols of BPE merges learned on the caption
vocabulary (:func:`toyworld.scene.caption_vocabulary`) until every caption word is a
single ``word</w>`` token, then ``<|startoftext|>`` and ``<|endoftext|>``.
Padding uses ``<|endoftext|>`` (as Stable Diffusion's tokenizer does).

``MAX_LENGTH`` = 40: the longest toy caption has 35 word tokens (three objects
``a small red circle moving in a circle`` + background + camera pan), 37 with
BOS/EOS.

API::

    build_tokenizer() -> CLIPTokenizer            # in memory
    save_tokenizer(folder) -> folder              # save_pretrained + vocab.json/merges.txt
    load_tokenizer(folder=DEFAULT) -> CLIPTokenizer
    check_tokenizer(folder) -> dict               # every vocabulary word -> exactly one id
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recut.models import REPO_ROOT
from toyworld.scene import caption_vocabulary
from toyworld.tinymodels import learn_bpe

MAX_LENGTH = 40
DEFAULT_DIR = REPO_ROOT / "models" / "toy" / "tokenizer"
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def build_vocab() -> tuple[dict[str, int], list[str]]:
    """Byte characters, ``</w>`` forms, merge results (learned to completion), specials."""
    vocab, merges = learn_bpe(dict.fromkeys(sorted(caption_vocabulary()), 1))
    assert vocab[BOS] == len(vocab) - 2 and vocab[EOS] == len(vocab) - 1
    return vocab, merges


def _write_files(work: Path) -> None:
    vocab, merges = build_vocab()
    work.mkdir(parents=True, exist_ok=True)
    (work / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (work / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")


def build_tokenizer() -> Any:
    """The toy ``CLIPTokenizer``, model_max_length :data:`MAX_LENGTH`."""
    from transformers import CLIPTokenizer  # local: transformers takes seconds to import

    vocab, merges = build_vocab()
    tok = CLIPTokenizer(vocab=dict(vocab), merges=[tuple(m.split(" ")) for m in merges], model_max_length=MAX_LENGTH)
    tok.model_max_length = MAX_LENGTH
    return tok


def save_tokenizer(folder: str | Path = DEFAULT_DIR) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer()
    tok.save_pretrained(folder)
    _write_files(folder)  # keep the source files (identical content) for older loaders
    return folder


def load_tokenizer(folder: str | Path = DEFAULT_DIR, fast: bool = False) -> Any:
    from transformers import CLIPTokenizer, CLIPTokenizerFast  # local: transformers takes seconds to import

    cls = CLIPTokenizerFast if fast else CLIPTokenizer
    return cls.from_pretrained(str(folder), local_files_only=True)


def check_tokenizer(folder: str | Path = DEFAULT_DIR) -> dict[str, Any]:
    """Load the slow and fast tokenizers and check each vocabulary word is one token."""
    res: dict[str, Any] = {}
    for name, fast in (("slow", False), ("fast", True)):
        try:
            tok = load_tokenizer(folder, fast=fast)
        except Exception as exc:  # noqa: BLE001 - reported; the fast tokenizer is optional
            res[name] = f"load failed: {exc}"
            continue
        bad = []
        for w in caption_vocabulary():
            ids = tok(w, add_special_tokens=False)["input_ids"]
            if len(ids) != 1 or tok.convert_ids_to_tokens(ids)[0] != w + "</w>":
                bad.append((w, ids))
        enc = tok("a small red circle, camera", padding="max_length", max_length=MAX_LENGTH)["input_ids"]
        ok_special = enc[0] == tok.bos_token_id and enc[7] == tok.eos_token_id and len(enc) == MAX_LENGTH
        res[name] = {
            "vocab_size": len(tok),
            "bad_words": bad,
            "specials_ok": bool(ok_special),
            "ok": not bad and ok_special,
        }
    res["passed"] = isinstance(res.get("slow"), dict) and res["slow"]["ok"]
    return res
