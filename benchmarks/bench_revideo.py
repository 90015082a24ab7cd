"""Figures for the revideo engine on toy scenes (benchmarks/RESULTS.md, section "ReVideo").

Prints markdown tables:

1. ``ablation``: trajectory error (px) of the edited object's judged path against the requested one,
   on held-out scenes (toyworld.zoo.revideo.heldout_scenes), for the control module (SAFM with the
   timestep), plain summation, Γ without the timestep, deblocking that tunes the whole module, and no
   control module (the base image-to-video model from the edited first frame); with the colour+shape
   kept rate and the unedited-region PSNR. Variants whose folder is missing are reported as such.
2. ``table1``: the paper's Table 1 columns (unedited-region PSNR, CLIP text, CLIP frame consistency)
   for one recolour per scene, made by revideo, gen1 (masked, truth mask) and per-frame SDEdit, each
   through its spec on the toy profile (planner + StageRunner).
3. ``modes``: one contact sheet per application mode (input row over output row), written to
   ``--figures``, with that scene's figures.
4. ``examples``: the two-area, irregular-mask and 24-frame windowed example specs, run as given:
   their metrics and the seam figure.

Usage: ``nice -n 10 python benchmarks/bench_revideo.py [--scenes 8] [--steps 25] [--only NAME ...]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from recut import video
from recut.outputs import materialize
from recut.plan import build_plan
from recut.runner import StageRunner, run_plan
from recut.spec import load_spec
from recut.store import Store
from toyworld import scene as toy
from toyworld.zoo import revideo as rz

REPO = Path(__file__).resolve().parents[1]
ROOT = Path(tempfile.mkdtemp(prefix="bench-revideo-"))
(ROOT / ".git").mkdir()
RUNNER = StageRunner()
STORE = Store(ROOT / "store")
ABLATIONS = REPO / "models" / "toy" / "revideo.work"
#: name -> (model folder, control module on)
VARIANTS = {
    "ReVideo (SAFM, Γ = H(M, t))": (REPO / "models" / "toy" / "revideo", True),
    "plain sum instead of SAFM": (ABLATIONS / "ablation-sum" / "revideo", True),
    "Γ = H(M), no timestep": (ABLATIONS / "ablation-no-t" / "revideo", True),
    "deblocking tunes the whole module": (ABLATIONS / "ablation-deblock-all" / "revideo", True),
    "no control module (base I2V)": (REPO / "models" / "toy" / "revideo", False),
}


def table(head: list[str], rows: list[list[Any]]) -> None:
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(f"{x:.2f}" if isinstance(x, float) else str(x) for x in r) + " |")
    print()


def mean(xs: list[Any]) -> float:
    xs = [x for x in xs if isinstance(x, int | float) and np.isfinite(x)]
    return float(np.mean(xs)) if xs else float("nan")


# --------------------------------------------------------------------------- 1. ablation


def ablation(n: int, steps: int) -> dict[str, Any]:
    print(f"### 1. Trajectory error and the ablations ({n} held-out scenes, {steps} steps)\n")
    rows, results = [], {}
    for name, (folder, control) in VARIANTS.items():
        if not (folder / "control").exists():
            rows.append([name, "not trained", "", "", "", ""])
            continue
        res = rz.evaluate(rz.load_components(folder, control), n, steps)
        results[name] = res
        s = res["summary"]
        rows.append(
            [
                name,
                s["trajectory"]["trajectory_px"],
                s["both"]["trajectory_px"],
                s["recolour"]["trajectory_px"],
                s["trajectory"]["kept_rate"],
                mean([m["unedited_psnr"] for m in s.values()]),
            ]
        )
    table(
        [
            "model",
            "new path: error px",
            "new content + path: error px",
            "recolour, own path: error px",
            "new path: object kept",
            "unedited PSNR dB",
        ],
        rows,
    )
    return results


# --------------------------------------------------------------------------- 2. Table 1


def run(spec: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """Plan and run a spec; one row per output: its metrics, its sample folder and sample meta."""
    path = ROOT / "specs" / f"{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    spec = {"outputs": {"dir": str(ROOT / "out" / name), "formats": ["npy"]}, **spec}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    plan = build_plan([load_spec(path)], STORE)
    refs = run_plan(plan, STORE.root, RUNNER)
    sp = plan.specs[0]
    summary = materialize(sp, refs, {n.stage.name: n.kind for n in plan.ordered()})
    rows = []
    for inst, chain in sp.chains.items():
        ref = refs[chain["sample"]]
        meta = dict(ref.meta)
        rows.append(
            {"metrics": summary["outputs"][inst.slug]["metrics"], "sample": ref.dir, "meta": meta, "edit": inst.edit}
        )
    return rows


METRICS = ["toy_unedited_psnr", "clip_text", "clip_consistency_consecutive", "toy_edit_success"]


def table1(n: int, steps: int) -> None:
    print(f"### 2. Table 1 columns: one recolour per scene ({n} held-out scenes), three engines\n")
    per: dict[str, list[dict[str, Any]]] = {"revideo": [], "gen1 (masked)": [], "sdedit (per frame)": []}
    for i, sc in enumerate(rz.heldout_scenes(n)):
        case = rz.make_case(sc, "recolour", i)
        obj = sc.objects[0]
        prompt = toy.caption(sc.model_copy(update={"objects": [obj.model_copy(update={"colour": case.colour})]}))
        first = ROOT / f"first-{i}.png"
        video.write_image(first, case.first)
        base = {"input": {"toy": sc.model_dump(mode="json")}, "model": {"profile": "toy"}, "seed": i}
        edits = [{"name": "recolour", "prompt": prompt}]
        ev = {"metrics": METRICS}
        area = {"mask": {"truth": 0, "dilate": 3}, "content": {"image": str(first)}, "motion": "keep"}
        specs = {
            "revideo": {"method": "revideo", "params": {"steps": steps, "areas": [area]}},
            "gen1 (masked)": {
                "method": "gen1",
                "params": {"steps": steps, "guidance_scale": 5.0, "mask": {"truth": True, "keep": "outside"}},
            },
            "sdedit (per frame)": {"method": "sdedit", "params": {"strength": 0.6, "steps": 30, "guidance_scale": 5.0}},
        }
        for name, extra in specs.items():
            (row,) = run({**base, **extra, "edits": edits, "evaluate": ev}, f"t1-{name.split()[0]}-{i}")
            per[name].append(row["metrics"])
    rows = [[name, *(mean([m.get(k) for m in ms]) for k in METRICS)] for name, ms in per.items()]
    table(["engine", "unedited PSNR dB", "CLIP text", "CLIP frame consistency", "judge success"], rows)


# --------------------------------------------------------------------------- 3. modes


def modes(results: dict[str, Any], steps: int, figures: Path) -> None:
    print("### 3. The three application modes (scene 0; contact sheets: input above, output below)\n")
    figures.mkdir(parents=True, exist_ok=True)
    c = rz.load_components(VARIANTS["ReVideo (SAFM, Γ = H(M, t))"][0])
    sc = rz.heldout_scenes(1)[0]
    rows = []
    for mode in rz.MODES:
        case = rz.make_case(sc, mode, 0)
        out = rz.run_case(c, case, steps, seed=0)
        sheet = np.concatenate([np.concatenate(list(case.frames), 1), np.concatenate(list(out), 1)], 0)
        path = figures / f"revideo-{mode}.png"
        video.write_image(path, sheet)
        m = rz.measure(case, out)
        rows.append([mode, m["trajectory_px"], m["kept"], m["unedited_psnr"], path.relative_to(REPO).as_posix()])
    table(["mode", "trajectory error px", "object kept", "unedited PSNR dB", "contact sheet"], rows)


# --------------------------------------------------------------------------- 4. examples


def examples() -> None:
    print("### 4. The example specs as given: three modes, an irregular mask, two areas, 24 frames in windows\n")
    rows = []
    for name in ("revideo-recolour", "revideo-trajectory", "revideo-both", "revideo-two-areas", "revideo-long"):
        raw = yaml.safe_load((REPO / "specs" / "examples" / f"{name}.yaml").read_text())
        areas = raw["params"]["areas"] + [a for e in raw["edits"] for a in (e.get("params") or {}).get("areas", [])]
        for a in areas:
            for key in ("mask", "content"):
                for field in ("file", "image"):
                    if a.get(key) and isinstance(a[key].get(field), str):
                        a[key][field] = str((REPO / "specs" / "examples" / a[key][field]).resolve())
        raw["allow_outside_root"] = True
        raw.pop("outputs", None)
        t0 = time.perf_counter()
        for row in run(raw, name):
            m, meta = row["metrics"], row["meta"]
            seam = meta.get("seam_ratio", "one window")
            rows.append(
                [
                    f"{name} [{row['edit']}]",
                    m.get("masked_psnr", "n/a"),
                    m.get("toy_trajectory_error", "n/a"),
                    m.get("toy_edit_success", "n/a"),
                    m.get("clip_consistency_consecutive", "n/a"),
                    len(meta.get("windows", [])) or 1,
                    seam,
                ]
            )
        rows[-1].append(round(time.perf_counter() - t0, 1))
    head = ["example [edit]", "unedited PSNR dB", "trajectory error px", "judge success", "CLIP consecutive"]
    table([*head, "windows", "seam ratio", "s (spec)"], [r + [""] * (8 - len(r)) for r in rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", type=int, default=8)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--only", nargs="*", default=None, choices=["ablation", "table1", "modes", "examples"])
    ap.add_argument("--figures", type=Path, default=REPO / "benchmarks" / "figures")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    only = set(args.only or ["ablation", "table1", "modes", "examples"])
    results: dict[str, Any] = {}
    if "ablation" in only:
        results = ablation(args.scenes, args.steps)
    if "table1" in only:
        table1(args.scenes, args.steps)
    if "modes" in only:
        modes(results, args.steps, args.figures)
    if "examples" in only:
        examples()


if __name__ == "__main__":
    main()
