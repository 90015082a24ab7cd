"""Registry of toy-zoo recipes and a CLI.

``RECIPES[name] = Recipe(train, folder, description, depends_on, check)``; ``train(out, quick,
seed, threads)`` trains and saves a ``from_pretrained`` folder (writing ``zoo_info.json`` with the
train time and quality figures) and ``check(folder)`` returns the quality figures with ``"passed"``.

CLI::

    python -m toyworld.zoo.recipes list
    python -m toyworld.zoo.recipes train NAME [--quick] [--out DIR] [--seed N] [--threads N]
    python -m toyworld.zoo.recipes check NAME [--out DIR]
    python -m toyworld.zoo.recipes report        # folder sizes + recorded figures (JSON)

``--quick`` is a seconds-long smoke configuration (a few steps on a few scenes); it requires
``--out`` so committed models are never overwritten by it.  Run real trainings with
``nice -n 19`` and one at a time.

Each recipe function imports the module it runs: the trainers import torch, diffusers and
transformers, so importing this module (to list the recipes) stays cheap; and the imports inside a
recipe's ``train`` name the code it runs, which its ``dvc.yaml`` stage lists as deps
(tests/test_zoo_a.py checks them).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recut.models import REPO_ROOT
from toyworld.zoo._cli import threads_arg

TOY_DIR = REPO_ROOT / "models" / "toy"


@dataclass(frozen=True)
class Recipe:
    #: ``train(out, quick=, seed=, threads=)``; ``threads``: torch intra-op threads (recipes
    #: without a torch training ignore it)
    train: Callable[..., dict[str, Any]]
    folder: Path
    description: str
    depends_on: tuple[str, ...] = ()
    check: Callable[..., dict[str, Any]] | None = None


def _tokenizer_train(out: str | Path, quick: bool = False, seed: int = 0, threads: int = 1) -> dict[str, Any]:
    from toyworld import tokenizer

    tokenizer.save_tokenizer(out)
    return tokenizer.check_tokenizer(out)


def _tokenizer_check(folder: str | Path, **_: Any) -> dict[str, Any]:
    from toyworld import tokenizer

    return tokenizer.check_tokenizer(folder)


def _vae_train(out: str | Path, quick: bool = False, seed: int = 0, threads: int = 1) -> dict[str, Any]:
    from toyworld.zoo import vae

    return vae.train(out, quick=quick, seed=seed, threads=threads)


def _vae_check(folder: str | Path, n: int = 256) -> dict[str, Any]:
    from toyworld.zoo import vae

    return vae.evaluate(folder, n=n)


def _clip_train(out: str | Path, quick: bool = False, seed: int = 0, threads: int = 1) -> dict[str, Any]:
    from toyworld.zoo import clip

    return clip.train(out, quick=quick, seed=seed, threads=threads)


def _clip_check(folder: str | Path, n: int = 480) -> dict[str, Any]:
    from toyworld.zoo import clip

    return clip.evaluate(folder, n=n)


def _text_encoder_train(
    out: str | Path, quick: bool = False, seed: int = 0, clip_dir: str | Path | None = None, threads: int = 1
) -> dict[str, Any]:
    from toyworld.zoo import clip

    return clip.export_text_encoder(clip_dir or TOY_DIR / "clip", out)


def _text_encoder_check(folder: str | Path, clip_dir: str | Path | None = None) -> dict[str, Any]:
    from toyworld.zoo import clip

    return clip.check_text_encoder(folder, clip_dir or TOY_DIR / "clip")


def _depth_train(out: str | Path, quick: bool = False, seed: int = 0, threads: int = 1) -> dict[str, Any]:
    from toyworld.zoo import depth

    return depth.train(out, quick=quick, seed=seed, threads=threads)


def _depth_check(folder: str | Path, n: int = 300) -> dict[str, Any]:
    from toyworld.zoo import depth

    return depth.evaluate(folder, n=n)


RECIPES: dict[str, Recipe] = {
    "tokenizer": Recipe(
        _tokenizer_train,
        TOY_DIR / "tokenizer",
        "Word-level CLIPTokenizer (one token per caption word).",
        (),
        _tokenizer_check,
    ),
    "vae": Recipe(_vae_train, TOY_DIR / "vae", "AutoencoderKL 64x64 -> 4x16x16 latents.", (), _vae_check),
    "clip": Recipe(
        _clip_train,
        TOY_DIR / "clip",
        "Toy CLIPModel + processor (zero-shot colour/shape).",
        ("tokenizer",),
        _clip_check,
    ),
    "text_encoder": Recipe(
        _text_encoder_train,
        TOY_DIR / "text_encoder",
        "CLIPTextModel = the toy CLIP's text tower (the diffusion models' text encoder).",
        ("clip",),
        _text_encoder_check,
    ),
    "depth": Recipe(
        _depth_train, TOY_DIR / "depth", "Tiny DPTForDepthEstimation (toy depth, 0 near .. 1 far).", (), _depth_check
    ),
}


# --- the T2V's text encoder and the text-to-image / text-to-video UNets (motion_text.py, t2i.py, t2v.py) ---


def _t2i_train(out: str | Path, quick: bool = False, seed: int = 0, threads: int = 1) -> dict[str, Any]:
    from toyworld.zoo import t2i

    return t2i.train(out, quick=quick, seed=seed, threads=threads)


def _t2i_check(folder: str | Path, **kw: Any) -> dict[str, Any]:
    from toyworld.zoo import t2i

    return t2i.check(folder, **kw)


def _t2v_train(out: str | Path, quick: bool = False, seed: int = 0, threads: int = 1) -> dict[str, Any]:
    from toyworld.zoo import t2v

    return t2v.train(out, quick=quick, seed=seed, threads=threads)


def _t2v_check(folder: str | Path, **kw: Any) -> dict[str, Any]:
    from toyworld.zoo import t2v

    return t2v.check(folder, **kw)


def _t2v_text_encoder_train(out: str | Path, quick: bool = False, seed: int = 0, threads: int = 1) -> dict[str, Any]:
    from toyworld.zoo import motion_text

    kw = {"steps": 3, "batch": 8, "n_captions": 32} if quick else {}
    return motion_text.train(out, seed=seed, threads=threads, **kw)


def _t2v_text_encoder_check(folder: str | Path, **_: Any) -> dict[str, Any]:
    from toyworld.zoo import motion_text

    return motion_text.check(folder)


RECIPES["t2v_text_encoder"] = Recipe(
    _t2v_text_encoder_train,
    TOY_DIR / "t2v_text_encoder",
    "The T2V's CLIPTextModel: the toy text encoder fine-tuned text-only so motion words reach its end-of-text states.",
    ("text_encoder", "tokenizer"),
    _t2v_text_encoder_check,
)
RECIPES["t2i"] = Recipe(
    _t2i_train,
    TOY_DIR / "t2i",
    "UNet2DConditionModel on toy VAE latents (SD-1.5 layout pipeline: StableDiffusionPipeline).",
    ("vae", "text_encoder", "tokenizer"),
    _t2i_check,
)
RECIPES["t2v"] = Recipe(
    _t2v_train,
    TOY_DIR / "t2v",
    "UNet3DConditionModel on 8-frame toy latent clips (ModelScope layout: TextToVideoSDPipeline).",
    ("vae", "t2v_text_encoder", "tokenizer", "t2i"),
    _t2v_check,
)


def _gen1_train(out: str | Path, quick: bool = False, seed: int = 0, threads: int = 1) -> dict[str, Any]:
    from toyworld.zoo import gen1

    return gen1.train(out, quick=quick, seed=seed, threads=threads, resume=True)


def _gen1_check(folder: str | Path, **kw: Any) -> dict[str, Any]:
    from toyworld.zoo import gen1

    return gen1.check(folder, **kw)


RECIPES["gen1"] = Recipe(
    _gen1_train,
    TOY_DIR / "gen1",
    "Gen-1: the toy T2V widened for depth structure at level t_s (+ content projection, text->image prior).",
    ("t2v", "clip", "depth"),
    _gen1_check,
)


def _svd_train(out: str | Path, quick: bool = False, seed: int = 0, threads: int = 1) -> dict[str, Any]:
    from toyworld.zoo import svd

    return svd.train(out, quick=quick, seed=seed, threads=threads)


def _svd_check(folder: str | Path, **kw: Any) -> dict[str, Any]:
    from toyworld.zoo import svd

    return svd.check(folder, **kw)


RECIPES["svd"] = Recipe(
    _svd_train,
    TOY_DIR / "svd",
    "SVD-class image-to-video (UNetSpatioTemporalConditionModel, EDM): first frame -> 8-frame clip.",
    ("vae", "clip", "t2i"),
    _svd_check,
)


def _revideo_motion_train(out: str | Path, quick: bool = False, seed: int = 0, threads: int = 1) -> dict[str, Any]:
    from toyworld.zoo import revideo

    return revideo.train("motion", out, quick=quick, seed=seed, threads=threads)


def _revideo_decouple_train(out: str | Path, quick: bool = False, seed: int = 0, threads: int = 1) -> dict[str, Any]:
    from toyworld.zoo import revideo

    return revideo.train("decouple", out, quick=quick, seed=seed, threads=threads)


def _revideo_train(out: str | Path, quick: bool = False, seed: int = 0, threads: int = 1) -> dict[str, Any]:
    from toyworld.zoo import revideo

    return revideo.train("deblock", out, quick=quick, seed=seed, threads=threads)


def _revideo_check(folder: str | Path, **kw: Any) -> dict[str, Any]:
    from toyworld.zoo import revideo

    return revideo.check(folder, **kw)


RECIPES["revideo_motion"] = Recipe(
    _revideo_motion_train,
    TOY_DIR / "revideo.work" / "revideo_motion",
    "ReVideo stage 1, motion prior: the control module on trajectories only (not committed; DVC output).",
    ("svd",),
)
RECIPES["revideo_decouple"] = Recipe(
    _revideo_decouple_train,
    TOY_DIR / "revideo.work" / "revideo_decouple",
    "ReVideo stage 2, decoupling: composite clips, content and motion from different sources (DVC output).",
    ("revideo_motion",),
)
RECIPES["revideo"] = Recipe(
    _revideo_train,
    TOY_DIR / "revideo",
    "ReVideo stage 3, deblocking (temporal K/V and SAFM's H): the control module and the base's K/V.",
    ("revideo_decouple",),
    _revideo_check,
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m toyworld.zoo.recipes", description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["list", "train", "check", "report"])
    ap.add_argument("name", nargs="?")
    ap.add_argument("--quick", action="store_true", help="seconds-long smoke config (needs --out)")
    ap.add_argument("--out", type=Path, help="output folder (default: the recipe's models/toy folder)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--threads", type=threads_arg, default=1, help="torch threads (default 1; more pay off on an idle machine)"
    )
    args = ap.parse_args(argv)
    if args.command == "list":
        for name, r in RECIPES.items():
            print(
                json.dumps(
                    {
                        "name": name,
                        "folder": str(r.folder),
                        "depends_on": list(r.depends_on),
                        "description": r.description,
                    }
                )
            )
        return 0
    if args.command == "report":
        from toyworld.zoo._util import folder_size, read_info

        rows = {}
        for name, r in RECIPES.items():
            rows[name] = {
                "folder": str(r.folder.relative_to(REPO_ROOT)),
                "exists": r.folder.is_dir(),
                "bytes": folder_size(r.folder) if r.folder.is_dir() else 0,
                "info": read_info(r.folder) if r.folder.is_dir() else {},
            }
        rows["total_bytes"] = sum(v["bytes"] for v in rows.values() if isinstance(v, dict))
        print(json.dumps(rows, indent=2, default=str))
        return 0
    if args.name not in RECIPES:
        ap.error(f"unknown recipe {args.name!r}; known: {', '.join(RECIPES)}")
    r = RECIPES[args.name]
    out = args.out or r.folder
    if args.command == "train":
        if args.quick and args.out is None:
            ap.error("--quick needs --out (quick models must not replace the committed ones)")
        info = r.train(out, quick=args.quick, seed=args.seed, threads=args.threads)
        print(json.dumps(info, indent=2, default=str))
        return 0
    res = r.check(out) if r.check else {"passed": None}
    print(json.dumps(res, indent=2, default=str))
    return 0 if res.get("passed") else 1


if __name__ == "__main__":
    sys.exit(main())
