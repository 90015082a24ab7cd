"""Figures for the gen1 engine on toy scenes (benchmarks/RESULTS.md, section "Gen-1").

Every figure comes from specs run through recut's planner and StageRunner (no Prefect or Ray), on
the toy profile, and from the evaluate stage's metrics. Prints markdown tables:

1. ``levels``: structure level t_s against prompt consistency (CLIP text, judge success of a prompt
   that changes colour and shape) and structure fidelity (the output's depth through the toy DPT
   against the input's, mean absolute difference of the clip-normalised maps);
2. ``temporal``: ω_t against frame consistency (CLIP consecutive, flow warp error);
3. ``content``: character replacement (content from an image of another object) at t_s 0 and 3;
4. ``masked``: masked editing, the kept region's PSNR with and without paste-back;
5. ``compare``: per-frame SDEdit, Dreamix (no finetune) and gen1 at t_s 0 and 3 on one recolour;
6. ``cost``: one depth extraction shared by four edits, seconds per stage.

Usage: ``nice -n 10 python benchmarks/bench_gen1.py [--scenes 6] [--only NAME ...] [--model DIR]``
(``--model``: another Gen-1 folder, e.g. a training in progress, in place of models/toy/gen1).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from recut.outputs import materialize
from recut.plan import build_plan
from recut.runner import StageRunner, run_plan
from recut.spec import load_spec
from recut.store import Store
from toyworld import scene as toy

ROOT = Path(tempfile.mkdtemp(prefix="bench-gen1-"))
(ROOT / ".git").mkdir()
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")
SHAPES = ("circle", "square", "triangle")
MOTIONS = ("right", "left", "down", "up")
SAMPLE = {"steps": 25, "guidance_scale": 5.0}
RUNNER = StageRunner()
STORE = Store(ROOT / "store")
TIMES: dict[str, list[float]] = {}


def scene(i: int, background: str = "plain") -> dict[str, Any]:
    return {
        "objects": [
            {"shape": SHAPES[i % 3], "colour": COLOURS[i % len(COLOURS)], "size": "large", "motion": MOTIONS[i % 4]}
        ],
        "background": {"kind": background, "colour": "white" if background == "plain" else "cyan"},
        "frames": 8,
        "seed": 100 + i,
    }


def caption(sc: dict[str, Any], colour: str | None = None, shape: str | None = None) -> str:
    o = dict(sc["objects"][0])
    o.update({k: v for k, v in (("colour", colour), ("shape", shape)) if v})
    return toy.caption(toy.ToyScene.model_validate({**sc, "objects": [o]}))


def other(sc: dict[str, Any], k: int = 1) -> tuple[str, str]:
    """A colour and a shape that differ from the scene object's (and from a white background)."""
    o = sc["objects"][0]
    colours = [c for c in COLOURS if c != o["colour"]]
    shapes = [s for s in SHAPES if s != o["shape"]]
    return colours[k % len(colours)], shapes[k % len(shapes)]


def run(spec: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """Plan and run a spec; one row per output: its point, metrics, sample folder and seconds."""
    path = ROOT / "specs" / f"{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    spec = {"outputs": {"dir": str(ROOT / "out" / name), "formats": ["npy"]}, **spec}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    plan = build_plan([load_spec(path)], STORE)

    def timed(node: Any, ref: Any, seconds: float) -> None:
        if not node.cached:
            TIMES.setdefault(f"{node.method}.{node.stage.name}", []).append(seconds)

    refs = run_plan(plan, STORE.root, RUNNER, timed)
    sp = plan.specs[0]
    summary = materialize(sp, refs, {n.stage.name: n.kind for n in plan.ordered()})
    rows = []
    for inst, chain in sp.chains.items():
        sample = refs[chain["sample"]].dir
        rows.append(
            {
                "point": dict(inst.point),
                "edit": inst.edit,
                "metrics": summary["outputs"][inst.slug]["metrics"],
                "sample": sample,
                "pre": refs[chain["preprocess"]].dir,
                "extract": refs[chain["extract"]].dir if "extract" in chain else None,
            }
        )
    return rows


def gen1_spec(sc: dict[str, Any], params: dict[str, Any], edits: list[dict[str, Any]], metrics: Any, **kw: Any):
    return {
        "method": "gen1",
        "input": {"toy": sc},
        "model": MODEL,
        "seed": 0,
        "params": {**SAMPLE, **params},
        "edits": edits,
        "evaluate": metrics,
        **kw,
    }


def mean(xs: list[float]) -> float:
    xs = [x for x in xs if isinstance(x, int | float) and np.isfinite(x)]
    return float(np.mean(xs)) if xs else float("nan")


def table(head: list[str], rows: list[list[Any]]) -> None:
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(f"{x:.3f}" if isinstance(x, float) else str(x) for x in r) + " |")
    print()


# --------------------------------------------------------------------------- 1. structure level


_DEPTH: Any = None


def depth_error(frames: np.ndarray, reference: np.ndarray) -> float:
    """Mean |depth(frames) - reference| of clip-normalised toy-DPT depth maps."""
    global _DEPTH
    from transformers import DPTForDepthEstimation, DPTImageProcessor

    from engines.common.structure import depth_maps

    if _DEPTH is None:
        d = Path(MODEL_DIR) / "depth"
        _DEPTH = (DPTForDepthEstimation.from_pretrained(d).eval(), DPTImageProcessor.from_pretrained(d))
    return float(np.abs(depth_maps(frames, *_DEPTH) - reference).mean())


def levels(n: int) -> None:
    print("### 1. Structure level t_s (ω_t = 1; prompt changes colour and shape)\n")
    per: dict[int, list[tuple[float, float, float, float]]] = {}
    for i in range(n):
        sc = scene(i)
        colour, shape = other(sc)
        edits = [{"name": "edit", "prompt": caption(sc, colour, shape)}]
        spec = gen1_spec(
            sc, {}, edits, ["clip_text", "toy_edit_success"], sweep={"params.structure_level": [0, 2, 4, 6]}
        )
        for r in run(spec, f"levels-{i}"):
            ref = np.load(r["extract"] / "structure.npy").astype(np.float32)
            out = np.load(r["sample"] / "frames.npy")
            m = r["metrics"]
            per.setdefault(r["point"]["params.structure_level"], []).append(
                (m["clip_text"], m["toy_edit_success"], m["toy_edit_shape"], depth_error(out, ref))
            )
    rows = [
        [
            ts,
            mean([v[0] for v in vals]),
            mean([v[1] for v in vals]),
            mean([v[2] for v in vals]),
            mean([v[3] for v in vals]),
        ]
        for ts, vals in sorted(per.items())
    ]
    table(["t_s", "CLIP text", "judge success", "shape right", "depth error (lower = more faithful)"], rows)


# --------------------------------------------------------------------------- 2. temporal guidance


def temporal(n: int) -> None:
    print("### 2. Temporal guidance ω_t (t_s = 0; recolour)\n")
    per: dict[float, list[tuple[float, float, float]]] = {}
    for i in range(n):
        sc = scene(i)
        colour, _ = other(sc)
        edits = [{"name": "edit", "prompt": caption(sc, colour)}]
        metrics = ["clip_consistency_consecutive", "flow_warp_error", "toy_edit_success"]
        spec = gen1_spec(sc, {}, edits, metrics, sweep={"params.temporal_guidance": [0.0, 0.5, 1.0, 1.25, 1.5, 2.0]})
        for r in run(spec, f"temporal-{i}"):
            m = r["metrics"]
            per.setdefault(r["point"]["params.temporal_guidance"], []).append(
                (m["clip_consistency_consecutive"], m["flow_warp_error"], m["toy_edit_success"])
            )
    rows = [[w, *(mean([v[k] for v in vals]) for k in range(3))] for w, vals in sorted(per.items())]
    table(["ω_t", "CLIP consecutive", "flow warp error", "judge success"], rows)


# --------------------------------------------------------------------------- 3. content image


def content(n: int) -> None:
    from PIL import Image

    print("### 3. Character replacement: content from an image of another object\n")
    per: dict[int, list[dict[str, Any]]] = {}
    for i in range(n):
        sc = scene(i)
        colour, shape = other(sc, 2)
        ref = ROOT / f"content-{i}.png"
        still = {"shape": shape, "colour": colour, "size": "large", "motion": "static", "start": [0.5, 0.5]}
        img = toy.render(toy.ToyScene.model_validate({"objects": [still], "frames": 1})).frames[0]
        Image.fromarray(img).save(ref)
        edits = [{"name": "edit", "prompt": caption(sc, colour, shape)}]  # names the target for the judge
        params = {"content": "image", "content_image": str(ref)}
        metrics = {"metrics": ["toy_edit_success", "toy_trajectory_error"], "trajectory": {"path": "truth"}}
        spec = gen1_spec(sc, params, edits, metrics, sweep={"params.structure_level": [0, 3]})
        for r in run(spec, f"content-{i}"):
            per.setdefault(r["point"]["params.structure_level"], []).append(r["metrics"])
    rows = [
        [
            ts,
            mean([m["toy_edit_colour"] for m in ms]),
            mean([m["toy_edit_shape"] for m in ms]),
            mean([m["toy_edit_motion"] for m in ms]),
            mean([m["toy_trajectory_error"] for m in ms]),
        ]
        for ts, ms in sorted(per.items())
    ]
    table(["t_s", "colour of the image", "shape of the image", "input's motion", "trajectory error (px)"], rows)


# --------------------------------------------------------------------------- 4. masked editing


def masked(n: int) -> None:
    print("### 4. Masked editing (truth mask, keep outside; textured background)\n")
    per: dict[bool, list[dict[str, Any]]] = {}
    for i in range(n):
        sc = scene(i, background="stripes")
        colour, _ = other(sc)
        edits = [{"name": "edit", "prompt": caption(sc, colour)}]
        for paste in (False, True):
            params = {"mask": {"truth": True, "keep": "outside", "paste_back": paste}}
            metrics = {"metrics": ["masked_psnr", "toy_edit_success", "toy_unedited_psnr"], "mask": "engine"}
            for r in run(gen1_spec(sc, params, edits, metrics), f"masked-{i}-{paste}"):
                per.setdefault(paste, []).append(r["metrics"])
    rows = [
        [
            paste,
            mean([m["masked_psnr"] for m in ms]),
            mean([m["toy_unedited_psnr"] for m in ms]),
            mean([m["toy_edit_colour"] for m in ms]),
        ]
        for paste, ms in sorted(per.items())
    ]
    table(["paste_back", "kept region PSNR (dB)", "toy unedited PSNR (dB)", "edited object recoloured"], rows)


# --------------------------------------------------------------------------- 5. comparison


def compare(n: int) -> None:
    print("### 5. The same recolour by four methods\n")
    metrics = {
        "metrics": ["toy_edit_success", "toy_unedited_psnr", "clip_consistency_consecutive", "toy_trajectory_error"],
        "trajectory": {"path": "truth"},
    }
    methods = {
        "sdedit (per frame, s = 0.6)": ("sdedit", {"strength": 0.6, "steps": 25, "guidance_scale": 5.0}),
        "dreamix (no finetune, s = 0.6)": (
            "dreamix",
            {"strength": 0.6, "steps": 25, "guidance_scale": 5.0, "finetune_steps": 0},
        ),
        "gen1 t_s = 0": ("gen1", {**SAMPLE, "structure_level": 0}),
        "gen1 t_s = 3": ("gen1", {**SAMPLE, "structure_level": 3}),
    }
    rows = []
    for label, (method, params) in methods.items():
        ms = []
        for i in range(n):
            sc = scene(i)
            colour, _ = other(sc)
            spec = {
                "method": method,
                "input": {"toy": sc},
                "model": MODEL if method == "gen1" else {"profile": "toy"},
                "seed": 0,
                "params": params,
                "edits": [{"name": "edit", "prompt": caption(sc, colour)}],
                "evaluate": metrics,
            }
            ms += [r["metrics"] for r in run(spec, f"compare-{method}-{label[-1]}-{i}")]
        rows.append(
            [
                label,
                mean([m["toy_edit_success"] for m in ms]),
                mean([m["toy_unedited_psnr"] for m in ms]),
                mean([m["clip_consistency_consecutive"] for m in ms]),
                mean([m["toy_trajectory_error"] for m in ms]),
            ]
        )
    table(["method", "edit success", "unedited PSNR (dB)", "CLIP consecutive", "trajectory error (px)"], rows)


# --------------------------------------------------------------------------- 6. cost


def cost(_: int) -> None:
    print("### 6. Cost: four edits of one clip\n")
    sc = scene(0)
    edits = [{"name": c, "prompt": caption(sc, c)} for c in ("green", "blue", "purple", "orange")]
    spec = gen1_spec(sc, {}, edits, ["psnr"])
    path = ROOT / "specs" / "cost.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump({"outputs": {"dir": str(ROOT / "out" / "cost")}, **spec}, sort_keys=False))
    plan = build_plan([load_spec(path)], Store(ROOT / "cost-store"))
    count: dict[str, int] = {}
    for node in plan.ordered():
        count[node.stage.name] = count.get(node.stage.name, 0) + 1
    print(f"plan: {json.dumps(count)}\n")
    rows = [[k, len(v), mean(v)] for k, v in sorted(TIMES.items())]
    table(["stage", "runs", f"seconds per run ({torch.get_num_threads()} threads)"], rows)


SECTIONS = {"levels": levels, "temporal": temporal, "content": content, "masked": masked, "compare": compare}
MODEL: dict[str, Any] = {"profile": "toy"}
MODEL_DIR = str(Path(__file__).resolve().parents[1] / "models" / "toy" / "gen1")


def main(argv: list[str] | None = None) -> None:
    global MODEL, MODEL_DIR
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenes", type=int, default=6)
    ap.add_argument("--only", nargs="*", choices=[*SECTIONS, "cost"])
    ap.add_argument("--model", type=Path, help="a Gen-1 folder in place of models/toy/gen1")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.model is not None:
        MODEL, MODEL_DIR = {"path": str(args.model.resolve())}, str(args.model.resolve())
    t0 = time.time()
    for name in args.only or [*SECTIONS, "cost"]:
        (SECTIONS.get(name) or cost)(args.scenes)
    print(f"({time.time() - t0:.0f} s, {args.scenes} scenes, store {ROOT})")


if __name__ == "__main__":
    main()
