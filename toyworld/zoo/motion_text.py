"""The toy T2V's own text encoder: the toy text encoder, fine-tuned text-only so that the
caption's motion words reach every end-of-text token.

Why.  ``models/toy/text_encoder`` is the text tower of the toy CLIP, trained contrastively on
single *frames*: nothing in that objective depends on which way an object moves, so its hidden
states barely change with the direction word, least at the end-of-text and padding tokens, which
draw most of a UNet's cross-attention.

What.  A copy of that encoder (same ``CLIPTextModel`` class and config, so the same tokenizer and
pipelines load it) trained for a few minutes on captions alone with three losses:

* at every end-of-text/padding position, linear heads classify each object's colour, shape, size
  and motion (slots for up to 3 objects, "none" for absent ones), the background's kind and colour
  and the camera pan: the causal encoder has seen the whole caption there;
* an anchor, :data:`ANCHOR` x the mean squared change of every hidden state from the original
  encoder, so what the T2I-initialised UNet layers already read (colour, shape) keeps its place;
* a hinge: for :data:`SWAP_BATCH` captions per step whose first object moves left/right/up/down,
  the end-of-text states' relative change when that direction is swapped (what :func:`separation`
  measures) is pushed above :data:`SWAP_MARGIN`.

``separation`` measures the result: the relative change of the end-of-text states when one word
of a caption is swapped (direction or colour), before and after.

API: :func:`train(out_dir, ...)` -> figures; :func:`separation(folder)` -> figures;
:func:`check(folder)` -> the separation figures with ``passed``.
CLI: ``python -m toyworld.zoo.motion_text train [--out DIR]`` / ``check [DIR]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from toyworld import scene as toy
from toyworld.zoo._util import set_threads, write_info
from toyworld.zoo.t2i import TOY_ROOT, repo_rel
from toyworld.zoo.t2v import DIRECTIONS, TEXT_ENCODER, probe_scenes, swap_word

DEFAULT_OUT = TEXT_ENCODER
SOURCE = TOY_ROOT / "text_encoder"
TOKENIZER = TOY_ROOT / "tokenizer"
TRAIN_SEED = 5100
MAX_OBJECTS = 3
STEPS = 1200
BATCH = 256
N_CAPTIONS = 20000
LR = 1e-3
ANCHOR = 0.1
SWAP_MARGIN = 0.8
SWAP_BATCH = 64
MIN_MOTION_CHANGE = 0.6
MIN_COLOUR_CHANGE = 0.5

#: classification heads: name -> classes ("none" = no such object)
FIELDS: dict[str, tuple[str, ...]] = {
    **{
        f"obj{k}_{attr}": (*values, "none")
        for k in range(MAX_OBJECTS)
        for attr, values in (
            ("colour", tuple(toy.COLOURS)),
            ("shape", toy.SHAPES),
            ("size", tuple(toy.SIZES)),
            ("motion", toy.MOTIONS),
        )
    },
    "bg_kind": toy.BACKGROUNDS,
    "bg_colour": tuple(toy.COLOURS),
    "pan": toy.PANS,
}


def labels(scene: toy.ToyScene) -> dict[str, int]:
    """Class index of every :data:`FIELDS` entry for ``scene``."""
    out = {"bg_kind": toy.BACKGROUNDS.index(scene.background.kind)}
    out["bg_colour"] = FIELDS["bg_colour"].index(scene.background.colour)
    out["pan"] = toy.PANS.index(scene.camera_pan)
    for k in range(MAX_OBJECTS):
        o = scene.objects[k] if k < len(scene.objects) else None
        for attr in ("colour", "shape", "size", "motion"):
            classes = FIELDS[f"obj{k}_{attr}"]
            out[f"obj{k}_{attr}"] = classes.index(getattr(o, attr)) if o is not None else len(classes) - 1
    return out


def training_captions(n: int, seed: int = TRAIN_SEED) -> tuple[list[str], dict[str, torch.Tensor]]:
    """``n`` captions of 1-3 object scenes over every motion, background and pan, and their labels."""
    caps, labs = [], {f: [] for f in FIELDS}
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        s = toy.sample_scene(rng, max_objects=int(rng.integers(1, MAX_OBJECTS + 1)), frames=8)
        caps.append(toy.caption(s))
        for f, v in labels(s).items():
            labs[f].append(v)
    return caps, {f: torch.tensor(v) for f, v in labs.items()}


def _load(folder: str | os.PathLike[str]):
    from transformers import CLIPTextModel, CLIPTokenizer  # local: transformers takes seconds to import

    if not (Path(folder) / "config.json").is_file():
        raise FileNotFoundError(f"text encoder folder {str(folder)!r} has no config.json (not a CLIPTextModel folder)")
    tok = CLIPTokenizer.from_pretrained(TOKENIZER if not (Path(folder) / "vocab.json").exists() else folder)
    return tok, CLIPTextModel.from_pretrained(folder).eval()


def _ids(tok, captions: Sequence[str]) -> torch.Tensor:
    return tok(
        list(captions), padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids


@torch.no_grad()
def separation(folder: str | os.PathLike[str] = DEFAULT_OUT, n: int = 64) -> dict[str, Any]:
    """Relative change ``|h(swapped) - h| / |h|`` of the end-of-text/padding hidden states (and
    at the swapped word) when a held-out single-object caption's direction or colour is swapped
    (:func:`toyworld.zoo.t2v.swap_word`; the captions of :func:`toyworld.zoo.t2v.probe_scenes`)."""
    tok, te = _load(folder)
    caps = [toy.caption(s) for s in probe_scenes(n)]
    ids = _ids(tok, caps)
    h = te(ids)[0]
    eos = ids == tok.eos_token_id
    out: dict[str, Any] = {"n_captions": n}
    for attr in ("motion", "colour"):
        ids2 = _ids(tok, [swap_word(c, attr) for c in caps])
        h2 = te(ids2)[0]
        rel = (h2 - h).norm(dim=-1) / h.norm(dim=-1)
        out[f"{attr}_eos_rel_change"] = round(float(rel[eos].mean()), 4)
        out[f"{attr}_word_rel_change"] = round(float(rel[ids2 != ids].mean()), 4)
    return out


def check(folder: str | os.PathLike[str] = DEFAULT_OUT) -> dict[str, Any]:
    """:func:`separation`, passed when a direction swap changes the end-of-text states by at least
    :data:`MIN_MOTION_CHANGE` and a colour swap still by at least :data:`MIN_COLOUR_CHANGE` (the
    CLIP text tower it is fine-tuned from passes only the second)."""
    res = separation(folder)
    res["passed"] = (
        res["motion_eos_rel_change"] >= MIN_MOTION_CHANGE and res["colour_eos_rel_change"] >= MIN_COLOUR_CHANGE
    )
    return res


def train(
    out_dir: str | os.PathLike[str] = DEFAULT_OUT,
    source: str | os.PathLike[str] = SOURCE,
    steps: int = STEPS,
    batch: int = BATCH,
    n_captions: int = N_CAPTIONS,
    seed: int = 0,
    threads: int = 1,
    log=print,
) -> dict[str, Any]:
    """Fine-tune ``source`` (a ``CLIPTextModel`` folder) as the module docstring says; save it with
    ``save_pretrained`` to ``out_dir``; return figures (also in ``out_dir/zoo_info.json``)."""
    set_threads(threads)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    tok, te = _load(source)
    ref = copy.deepcopy(te).requires_grad_(False)
    caps, labs = training_captions(n_captions)
    ids = _ids(tok, caps)
    with torch.no_grad():
        ref_h = torch.cat([ref(ids[i : i + 1024])[0] for i in range(0, len(ids), 1024)])
    eos = ids == tok.eos_token_id
    # captions whose first object moves left/right/up/down, and their direction-swapped ids
    swappable = [i for i, c in enumerate(caps) if toy.parse_caption(c)[0]["motion"] in DIRECTIONS]
    swapped = ids.clone()
    swapped[swappable] = _ids(tok, [swap_word(caps[i], "motion") for i in swappable])
    swappable = torch.tensor(swappable)
    hidden = te.config.hidden_size
    heads = torch.nn.ModuleDict({f: torch.nn.Linear(hidden, len(c)) for f, c in FIELDS.items()})
    te.train()
    opt = torch.optim.AdamW([*te.parameters(), *heads.parameters()], lr=LR, weight_decay=0.01)
    g = torch.Generator().manual_seed(seed)
    hist = []
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(ids), (batch,), generator=g)
        h = te(ids[idx])[0]
        m = eos[idx]
        pos = h[m]  # [P, hidden]: every end-of-text/padding position of the batch
        owner = m.nonzero()[:, 0]
        ce = sum(torch.nn.functional.cross_entropy(heads[f](pos), labs[f][idx][owner]) for f in FIELDS) / len(FIELDS)
        drift = (h - ref_h[idx]).pow(2).mean()
        pidx = swappable[torch.randint(0, len(swappable), (SWAP_BATCH,), generator=g)]
        ha, hb = te(ids[pidx])[0], te(swapped[pidx])[0]
        rel = (ha - hb).norm(dim=-1) / ha.norm(dim=-1).clamp(min=1e-6)
        hinge = torch.relu(SWAP_MARGIN - rel[eos[pidx]]).mean()
        loss = ce + ANCHOR * drift + hinge
        opt.zero_grad()
        loss.backward()
        opt.step()
        hist.append((ce.item(), drift.item(), hinge.item()))
        if log and (step % 100 == 0 or step == steps):
            c, d, hg = np.mean(hist[-100:], axis=0)
            log(f"step {step}/{steps} ce {c:.4f} drift {d:.4f} hinge {hg:.4f} {time.perf_counter() - t0:.0f}s")
    te.eval()
    with torch.no_grad():
        acc = {}
        val_caps, val_labs = training_captions(2000, seed=TRAIN_SEED + 1)
        vids = _ids(tok, val_caps)
        vh = te(vids)[0]
        last = vh[torch.arange(len(vids)), (vids == tok.eos_token_id).int().argmax(1)]  # the first end-of-text token
        for f in FIELDS:
            acc[f] = round(float((heads[f](last).argmax(1) == val_labs[f]).float().mean()), 4)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    te.save_pretrained(out)
    figs = {
        "recipe": "t2v_text_encoder",
        "source": repo_rel(Path(source)),
        "steps": steps,
        "batch": batch,
        "lr": LR,
        "anchor": ANCHOR,
        "n_captions": n_captions,
        "seed": seed,
        "train_time_s": round(time.perf_counter() - t0, 1),
        "threads": threads,
        "final_ce": round(float(np.mean([h[0] for h in hist[-100:]])), 4),
        "final_drift": round(float(np.mean([h[1] for h in hist[-100:]])), 4),
        "swap_margin": SWAP_MARGIN,
        "final_hinge": round(float(np.mean([h[2] for h in hist[-100:]])), 4),
        "heldout_head_accuracy": acc,
        "separation": separation(out),
        "separation_source": separation(source),
    }
    write_info(out, figs)
    return figs


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m toyworld.zoo.motion_text")
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("train", help="fine-tune the toy text encoder for the T2V")
    a.add_argument("--out", default=str(DEFAULT_OUT))
    a.add_argument("--source", default=str(SOURCE), help="the text encoder folder to fine-tune")
    c = sub.add_parser("check", help="print the direction/colour separation of a text encoder folder")
    c.add_argument("folder", nargs="?", default=str(DEFAULT_OUT))
    args = ap.parse_args(argv)
    try:
        if args.cmd == "train":
            res = train(args.out, args.source)
        else:
            res = check(args.folder)
    except OSError as exc:  # a missing or malformed folder given on the command line
        ap.exit(2, f"{ap.prog}: error: {exc}\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
