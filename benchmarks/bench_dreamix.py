"""Figures for the dreamix engine on toy scenes (benchmarks/RESULTS.md, section "Dreamix").

Runs the engine's stages directly (no Prefect/Ray: the figures are about the method), on the
toy profile, one torch thread.  Prints markdown tables:

1. the s trade-off: fidelity to the input (PSNR) falls and prompt alignment (target colour
   found by the ground-truth judge) rises with the noise strength s, without and with finetuning;
2. finetuning improves fidelity at high s;
3. motion edits ("moving left" -> "moving right"): success with mixed finetuning vs video-only;
4. an animated image (pan, alpha 0) and a subject-driven clip (image collection, alpha 0): colour,
   shape and motion judged with toyworld/judge.py;
5. a 3x3 sweep (finetune steps x s) through the planner and the store: 3 finetunes, 9 samples.

Usage: ``nice -n 10 python benchmarks/bench_dreamix.py [--scenes N] [--only NAME ...] [--video DIR]``
(``--video``: another T2V pipeline folder, e.g. a training checkpoint, in place of the toy one).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from engines.common.params import check_guided, check_interval
from engines.dreamix import ENGINE
from engines.dreamix.params import DreamixParams, with_rare_token
from recut.engine import StageContext
from recut.models import resolve
from toyworld import scene as toy
from toyworld.judge import judge_object, judge_reconstruction

torch.set_num_threads(1)

ROOT = Path(tempfile.mkdtemp(prefix="bench-dreamix-"))
#: Toy-scaled finetuning (the paper: lr 6e-6, 64-300 steps on a 1.7B+ model).
FT = {"lr": 2e-4, "finetune_steps": 60}
SAMPLE = {"steps": 25, "guidance_scale": 5.0, "eta": 0.5}
COLOURS = ("red", "green", "blue", "yellow")
#: Noise strengths of the motion edit: a direction change needs the layout re-drawn, so high s.
MOTION_STRENGTHS = (0.75, 0.9, 1.0)
SHAPES = ("circle", "square", "triangle")


class Runner:
    """The engine's stages called directly, each output in a fresh folder."""

    def __init__(self, video: str | None = None) -> None:
        model = resolve(profile="toy")
        if video is not None:
            model = dataclasses.replace(model, components={**model.components, "video": video})
        self.engine = ENGINE(model)
        self.n = 0

    def stage(
        self, name: str, inputs: dict[str, Path], seed: int = 0, prompt: str = "", **params: Any
    ) -> tuple[Path, dict]:
        p = DreamixParams(**{"cascade": "none", **params}).model_dump(mode="json")
        st = ENGINE.stage(name)
        values = {r: p[r[7:]] for r in st.reads + st.options if r.startswith("params.")}
        values.update({"model": {}, "seed": seed, "edit.prompt": prompt, "edit.negative_prompt": ""})
        self.n += 1
        out = ROOT / f"{self.n:04d}-{name}"
        out.mkdir()
        t0 = time.perf_counter()
        meta = self.engine.run_stage(name, StageContext(values, inputs, out, seed=seed))
        meta["seconds"] = time.perf_counter() - t0
        return out, meta


def scene_dir(scene: dict[str, Any]) -> tuple[Path, str]:
    """A preprocess-like folder for a toy scene: frames.npy + info.json (with the caption)."""
    clip = toy.render(toy.ToyScene.model_validate(scene))
    d = ROOT / f"scene-{abs(hash(json.dumps(scene, sort_keys=True)))}"
    d.mkdir(exist_ok=True)
    np.save(d / "frames.npy", clip.frames)
    (d / "info.json").write_text(json.dumps({"fps": 8.0, "caption": clip.caption}))
    return d, clip.caption


def image_dir(images: list[np.ndarray]) -> Path:
    d = ROOT / f"images-{len(list(ROOT.iterdir()))}"
    d.mkdir()
    np.save(d / "frames.npy", np.stack(images))
    (d / "info.json").write_text(json.dumps({"fps": 8.0}))
    return d


def scenes(n: int, motion: str = "right", seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        out.append(
            {
                "objects": [
                    {
                        "shape": SHAPES[i % 3],
                        "colour": COLOURS[i % len(COLOURS)],
                        "size": "large",
                        "motion": motion,
                    }
                ],
                "background": {"kind": "plain", "colour": "white"},
                "frames": 8,
                "seed": int(rng.integers(1000)),
            }
        )
    return out


def fmt(x: float) -> str:
    return f"{x:.2f}"


#: A frame is "clean" when at least this fraction of it is the scene's white background. The judge
#: alone can find a colour (even a shape) in the noise textures a weak model produces at high s.
CLEAN = 0.5


def judge(frames: np.ndarray, colour: str, shape: str | None = None, motion: str | None = None) -> dict[str, Any]:
    """judge_object, with every attribute counted only on clean output (white background kept)."""
    from toyworld.scene import colour_mask

    j = judge_object(frames, colour, shape, motion)
    j["background"] = float(colour_mask(frames, "white").mean())
    j["clean"] = j["background"] >= CLEAN
    for k in ("colour", "shape", "motion"):
        if j[k] is not None:
            j[k] = bool(j[k]) and j["clean"]
    return j


def clip_text(frames: np.ndarray, prompt: str) -> float:
    from engines.common.evaluation import EvalContext
    from engines.common.metrics import evaluate_all

    loc = resolve(profile="toy").location("clip")
    return float(evaluate_all(["clip_text"], EvalContext(frames, None, prompt, clip_location=loc))["clip_text"])


def recolour(caption: str, colour: str) -> tuple[str, str]:
    src = toy.parse_caption(caption)[0]["colour"]
    new = next(c for c in COLOURS[COLOURS.index(colour) + 1 :] + COLOURS if c != src)
    return caption.replace(src, new, 1), new


# --------------------------------------------------------------------------- 1-2. the s trade-off


def guided(strengths: tuple[float, ...]) -> tuple[float, ...]:
    """The strengths a spec with :data:`SAMPLE`'s guidance interval accepts (a run starting below
    the interval would never be guided, and the params refuse it); the others are named and skipped."""
    interval = SAMPLE.get("guidance_interval", (0.0, 1.0))
    keep = []
    for s in strengths:
        try:
            check_guided(tuple(interval), s, SAMPLE["guidance_scale"])
            keep.append(s)
        except ValueError as exc:
            print(f"(skipped s={s}: {exc})")
    return tuple(keep)


def tradeoff(r: Runner, n_scenes: int) -> None:
    strengths = guided((0.0, 0.25, 0.5, 0.75, 1.0))
    rows: dict[tuple[str, float], list[tuple[float, float, bool]]] = {}
    ft_secs = []
    for sc in scenes(n_scenes, seed=1):
        pre, cap = scene_dir(sc)
        prep, _ = r.stage("prepare", {"preprocess": pre})
        ref = np.load(prep / "frames.npy")
        obj = toy.parse_caption(cap)[0]
        prompt, target = recolour(cap, obj["colour"])
        for tag, ft_params in (("none", {"finetune_steps": 0}), ("mixed", {**FT, "alpha": 0.35})):
            ft, m = r.stage("finetune", {"prepare": prep}, **ft_params)
            if tag != "none":
                ft_secs.append(m["seconds"])
            for s in strengths:
                out, _ = r.stage("sample", {"prepare": prep, "finetune": ft}, prompt=prompt, strength=s, **SAMPLE)
                f = np.load(out / "frames.npy")
                j = judge(f, target, obj["shape"])
                rows.setdefault((tag, s), []).append(
                    (judge_reconstruction(ref, f), clip_text(f, prompt), j["colour"], j["background"])
                )
    print(f"\n### 1. s trade-off ({n_scenes} toy scenes, recolour edit; mean over scenes)\n")
    print(
        "| s | PSNR to input, no finetune | PSNR, mixed finetune | CLIP text, no ft | CLIP text, mixed ft "
        "| target colour found, no ft | target colour, mixed ft | white background, no ft | white bg, mixed ft |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for s in strengths:
        a, b = rows[("none", s)], rows[("mixed", s)]
        print(
            f"| {s} | {fmt(np.mean([x[0] for x in a]))} | {fmt(np.mean([x[0] for x in b]))} "
            f"| {np.mean([x[1] for x in a]):.3f} | {np.mean([x[1] for x in b]):.3f} "
            f"| {sum(x[2] for x in a)}/{len(a)} | {sum(x[2] for x in b)}/{len(b)} "
            f"| {np.mean([x[3] for x in a]):.2f} | {np.mean([x[3] for x in b]):.2f} |"
        )
    print(
        f"\nmixed finetune: {FT['finetune_steps']} steps, lr {FT['lr']}, alpha 0.35; "
        f"{np.mean(ft_secs):.1f} s per finetune; sampling {SAMPLE}"
    )


# --------------------------------------------------------------------------- 3. motion edits


def motion(
    r: Runner,
    n_scenes: int,
    strengths: tuple[float, ...] = MOTION_STRENGTHS,
    ft_steps: tuple[int, ...] = (FT["finetune_steps"],),
    seeds: int = 2,
    scene_seed: int = 2,
) -> None:
    """Each finetune once per scene, sampled at every s (the finetunes are shared across s):
    no finetuning, and for each number of finetune steps video-only (alpha 1), mixed (alpha 0.35)
    and frames-only (alpha 0) finetuning.

    The prompt describes everything but the object's row (the scene's random start), so the row is
    the identity only finetuning can keep: an edit *succeeds* when the object moves right, keeps its
    colour and shape, and stays within :data:`ROW_TOL` pixels of the input's row."""
    res: dict[tuple[float, str], list[dict[str, Any]]] = {}
    strengths = guided(strengths)
    for sc in scenes(n_scenes, motion="left", seed=scene_seed):
        pre, cap = scene_dir(sc)
        prep, _ = r.stage("prepare", {"preprocess": pre})
        prepared = np.load(prep / "frames.npy")
        obj = toy.parse_caption(cap)[0]
        prompt = cap.replace("moving left", "moving right")
        settings = [("none", {"finetune_steps": 0})]
        for n in ft_steps:
            for name, alpha in (("video-only", 1.0), ("mixed", 0.35), ("frames-only", 0.0)):
                settings.append((f"{name} (alpha {alpha:g}, {n} steps)", {**FT, "finetune_steps": n, "alpha": alpha}))
        for tag, ftp in settings:
            ft, _ = r.stage("finetune", {"prepare": prep}, **ftp)
            for strength in strengths:
                for seed in range(seeds):
                    out, _ = r.stage(
                        "sample",
                        {"prepare": prep, "finetune": ft},
                        prompt=prompt,
                        seed=seed,
                        strength=strength,
                        **SAMPLE,
                    )
                    frames = np.load(out / "frames.npy")
                    j = judge(frames, obj["colour"], obj["shape"], "right")
                    j["bg_psnr"] = background_psnr(frames, prepared, obj["colour"])
                    j["row_err"] = row_error(frames, prepared, obj["colour"])
                    j["row"] = j["row_err"] <= ROW_TOL
                    j["success"] = bool(j["motion"] and j["colour"] and j["shape"] and j["row"])
                    res.setdefault((strength, tag), []).append(j)
    print(
        f"\n### 3. Motion edit 'moving left' -> 'moving right' ({n_scenes} scenes x {seeds} seeds; "
        f"finetune lr {FT['lr']})\n"
    )
    print(
        f"| s | finetuning | motion right | colour kept | shape kept | row kept (<= {ROW_TOL:g} px) "
        "| edit success (all four) | median row error (px) | clean (white bg >= 0.5) "
        "| background PSNR to input (dB) | predicted motions |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (strength, tag), js in res.items():
        preds: dict[str, int] = {}
        for j in js:
            preds[j["motion_pred"]] = preds.get(j["motion_pred"], 0) + 1
        print(
            f"| {strength} | {tag} | {sum(bool(j['motion']) for j in js)}/{len(js)} "
            f"| {sum(bool(j['colour']) for j in js)}/{len(js)} "
            f"| {sum(bool(j['shape']) for j in js)}/{len(js)} | {sum(j['row'] for j in js)}/{len(js)} "
            f"| {sum(j['success'] for j in js)}/{len(js)} | {np.median([j['row_err'] for j in js]):.1f} "
            f"| {sum(j['clean'] for j in js)}/{len(js)} "
            f"| {np.mean([j['bg_psnr'] for j in js]):.1f} | {preds} |"
        )


#: Row fidelity of a motion edit: the object's mean row may move this many pixels (of 64).
ROW_TOL = 4.0


def row_error(out: np.ndarray, ref: np.ndarray, colour: str) -> float:
    """Pixels between the object's mean row (centroid y over the frames where it is found) in the
    output and in the input; infinite when the output never shows it."""
    from toyworld.judge import object_masks

    def mean_row(frames: np.ndarray) -> float:
        masks, present = object_masks(frames, colour)
        rows = [np.nonzero(m)[0].mean() for m, p in zip(masks, present, strict=True) if p]
        return float(np.mean(rows)) if rows else float("inf")

    return abs(mean_row(out) - mean_row(ref))


def background_psnr(out: np.ndarray, ref: np.ndarray, colour: str) -> float:
    """PSNR over the pixels outside the object (its colour's component in either clip, grown by 2 px):
    fidelity of what a motion edit should leave alone."""
    from engines.common.metrics import psnr
    from toyworld.judge import object_masks

    obj = object_masks(out, colour)[0] | object_masks(ref, colour)[0]
    grown = np.stack([cv2.dilate(m.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0 for m in obj])
    return psnr(out, ref, ~grown)


# --------------------------------------------------------------------------- 4. animation, subject


def still(shape: str, colour: str, seed: int, size: str = "large") -> np.ndarray:
    sc = {
        "objects": [{"shape": shape, "colour": colour, "size": size, "motion": "static"}],
        "background": {"kind": "plain", "colour": "white"},
        "frames": 1,
        "seed": seed,
    }
    return toy.render(toy.ToyScene.model_validate(sc)).frames[0]


def animation(r: Runner) -> None:
    print("\n### 4a. Image animation (one still, camera pan right 0.25 -> content moves left; alpha 0 finetune)\n")
    print("| output | colour | shape | motion left | predicted motion | white bg | PSNR to coarse video |")
    print("|---|---|---|---|---|---|---|")
    for shape, colour in (("square", "red"), ("circle", "blue")):
        pre = image_dir([still(shape, colour, 5)])
        anim = {"kind": "pan", "direction": "right", "amount": 0.25}
        prep, _ = r.stage("prepare", {"preprocess": pre}, mode="animate", animation=anim)
        coarse = np.load(prep / "frames.npy")
        j = judge(coarse, colour, shape, "left")
        print(
            f"| coarse video ({colour} {shape}) | {j['colour']} | {j['shape']} | {j['motion']} "
            f"| {j['motion_pred']} | {j['background']:.2f} | - |"
        )
        prompt = f"a large {colour} {shape} moving left over a plain white background"
        ft, _ = r.stage(
            "finetune", {"prepare": prep}, mode="animate", finetune_prompt=f"a large {colour} {shape}", **FT
        )
        for s in guided((0.5, 0.75)):
            out, _ = r.stage(
                "sample", {"prepare": prep, "finetune": ft}, mode="animate", prompt=prompt, strength=s, **SAMPLE
            )
            f = np.load(out / "frames.npy")
            j = judge(f, colour, shape, "left")
            print(
                f"| edited, s={s} | {j['colour']} | {j['shape']} | {j['motion']} | {j['motion_pred']} "
                f"| {j['background']:.2f} | {fmt(judge_reconstruction(coarse, f))} |"
            )


def subject(r: Runner) -> None:
    """Finetune on 4 stills (alpha 0), generate from text alone; the rare token at the start of the
    prompts (the paper's 'sks a dog') and at the end (``rare_token_position: end``)."""
    shape, colour = "triangle", "green"
    imgs = [still(shape, colour, seed) for seed in (11, 12, 13, 14)]
    pre = image_dir(imgs)
    prep, _ = r.stage("prepare", {"preprocess": pre}, mode="subject")
    res: dict[str, list[dict[str, Any]]] = {}
    for pos in ("start", "end"):
        for tag, ftp in (
            ("no finetune", {"finetune_steps": 0}),
            ("subject finetune, 80 steps (alpha 0)", {**FT, "finetune_steps": 80}),
            ("subject finetune, 200 steps (alpha 0)", {**FT, "finetune_steps": 200}),
        ):
            ft, _ = r.stage(
                "finetune",
                {"prepare": prep},
                mode="subject",
                finetune_prompt=f"a large {colour} {shape}",
                rare_token_position=pos,
                **ftp,
            )
            for direction in ("up", "right", "left", "down"):
                text = f"a large {colour} {shape} moving {direction} over a plain white background"
                prompt = with_rare_token(text, "sks", pos)
                for seed in (0, 1):
                    out, _ = r.stage(
                        "sample", {"prepare": prep, "finetune": ft}, mode="subject", prompt=prompt, seed=seed, **SAMPLE
                    )
                    j = judge(np.load(out / "frames.npy"), colour, shape, direction)
                    res.setdefault(f"token at the {pos}: {tag}", []).append(j)
    print(
        f"\n### 4b. Subject-driven clip (4 stills of a {colour} {shape}; text only, s=1; "
        "prompts moving up/right/left/down x 2 seeds)\n"
    )
    print(
        "| model | colour kept | shape kept | motion follows prompt | clean | mean white bg "
        "| predicted shapes (raw judge) | predicted motions (raw judge) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for tag, js in res.items():
        n = len(js)
        shapes = {}
        motions = {}
        for j in js:
            shapes[j["shape_pred"]] = shapes.get(j["shape_pred"], 0) + 1
            motions[j["motion_pred"]] = motions.get(j["motion_pred"], 0) + 1
        print(
            f"| {tag} | {sum(bool(j['colour']) for j in js)}/{n} | {sum(bool(j['shape']) for j in js)}/{n} "
            f"| {sum(bool(j['motion']) for j in js)}/{n} | {sum(j['clean'] for j in js)}/{n} "
            f"| {np.mean([j['background'] for j in js]):.2f} | {shapes} | {motions} |"
        )


# --------------------------------------------------------------------------- 5. sweep cost


def sweep_cost() -> None:
    from collections import Counter

    from recut.plan import build_plan
    from recut.runner import StageRunner
    from recut.spec import load_spec
    from recut.store import Store

    spec = load_spec(Path(__file__).resolve().parent.parent / "specs" / "examples" / "dreamix-sweep.yaml")
    store = Store(ROOT / "store")
    runner = StageRunner()
    refs: dict[str, Any] = {}
    computed: Counter = Counter()
    secs: Counter = Counter()
    plan = build_plan([spec], store)
    for n in plan.ordered():
        t0 = time.perf_counter()
        refs[n.key] = runner.run(n.job({k: refs[v] for k, v in n.upstream.items()}, str(store.root)))
        computed[n.stage.name] += 1
        secs[n.stage.name] += time.perf_counter() - t0
    sweep = {k: v for k, v in spec.sweep.items()}
    print(f"\n### 5. Sweep cost (specs/examples/dreamix-sweep.yaml: {sweep})\n")
    print("| stage | computed | seconds |")
    print("|---|---|---|")
    for name in ("preprocess", "prepare", "finetune", "sample", "evaluate"):
        print(f"| {name} | {computed[name]} | {secs[name]:.1f} |")
    naive = secs["finetune"] / max(1, computed["finetune"]) * computed["sample"]
    print(f"\nA finetune per sample would cost ~{naive:.0f} s of finetuning instead of {secs['finetune']:.0f} s.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=4)
    ap.add_argument("--only", nargs="*", default=["tradeoff", "motion", "animation", "subject", "sweep"])
    ap.add_argument("--motion-strengths", type=float, nargs="+", default=list(MOTION_STRENGTHS))
    ap.add_argument("--motion-finetune-steps", type=int, nargs="+", default=[FT["finetune_steps"]])
    ap.add_argument("--motion-seeds", type=int, default=2, help="samples per scene and cell of the motion edit")
    ap.add_argument("--motion-scene-seed", type=int, default=2, help="seed of the motion edit's scenes")
    ap.add_argument(
        "--guidance-interval",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="params.guidance_interval of every sample (default: guide at every step)",
    )
    ap.add_argument(
        "--video",
        help="a T2V pipeline folder in place of the toy profile's (sections 1-4; the sweep runs the spec's model)",
    )
    args = ap.parse_args()
    if args.video is not None and not (Path(args.video) / "model_index.json").is_file():
        ap.error(f"--video: {args.video!r} is not a pipeline folder (no model_index.json)")
    if not all(0.0 <= x <= 1.0 for x in args.motion_strengths):
        ap.error(f"--motion-strengths: each s must be in [0, 1], got {args.motion_strengths}")
    if args.motion_seeds < 1:
        ap.error(f"--motion-seeds: must be >= 1, got {args.motion_seeds}")
    if not all(n >= 1 for n in args.motion_finetune_steps):
        ap.error(f"--motion-finetune-steps: each must be >= 1, got {args.motion_finetune_steps}")
    if args.guidance_interval is not None:
        try:
            SAMPLE["guidance_interval"] = list(check_interval(tuple(args.guidance_interval)))
        except ValueError as exc:
            ap.error(f"--guidance-interval: {exc}")
    r = Runner(args.video)
    t0 = time.perf_counter()
    try:
        if "tradeoff" in args.only:
            tradeoff(r, args.scenes)
        if "motion" in args.only:
            motion(
                r,
                args.scenes,
                tuple(args.motion_strengths),
                tuple(args.motion_finetune_steps),
                args.motion_seeds,
                args.motion_scene_seed,
            )
        if "animation" in args.only:
            animation(r)
        if "subject" in args.only:
            subject(r)
        if "sweep" in args.only:
            sweep_cost()
    finally:
        shutil.rmtree(ROOT, ignore_errors=True)
    video = f", video model {args.video}" if args.video else ""
    print(f"\n(total {time.perf_counter() - t0:.0f} s, toy profile{video}, 1 torch thread)")


if __name__ == "__main__":
    main()
