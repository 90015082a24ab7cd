"""The GPU benchmark: each method's stages at the papers' settings, timed on CUDA (benchmarks/RESULTS.md).

Every method runs through recut's planner and StageRunner (no Prefect, no Ray) on a toy scene of the
paper's size, in its own process, with the half-precision path (``--dtype``, bfloat16 by default),
diffusers' SDPA attention and, with ``--compile``, ``torch.compile`` on every UNet. Each stage runs a few
steps; the steps are timed through the stage's progress reports, and the stage is extrapolated to the
paper's step count (its fixed cost plus the median step time per step). Extrapolated figures carry a
``*``. One table: seconds per stage, seconds per edit (the per-edit stages), peak GPU memory, and the
paper's figure beside ours where the paper gives one.

* Video-P2P (8 frames at 512x512): tuning 500 steps, DDIM inversion 50, null-text 50 x 10, one edit 50;
  the paper: 5 + 6 + 1 minutes on a V100 (tuning; inversion with null-text; one edit).
* Dreamix (ModelScope UNet, 16 frames at 256x256): a full finetune of 250 steps (alpha 0.35) and a sample of
  50 DDIM steps at strength 0.6.
* Gen-1 (16 frames at 256x256, DPT-Large depth): one edit of 50 DDIM steps; the paper: about 1 minute.
* ReVideo (SVD-XT, 25 frames at 1024x576): tracking, frame 0 from an image, one edit of 25 Euler steps.
* SDEdit (SD-1.5, 8 frames at 512x512, per frame): 50 steps at strength 0.6, the baseline.

    python benchmarks/gpu.py [--profile fullsize-random] [--dtype bfloat16|float16] [--compile] [--only NAME ...]
    python benchmarks/gpu.py --tiny     # CPU, the tiny-random profile, seconds: checks that the script works

The ``fullsize-random`` profile (random weights, real architectures) builds its weights on first use
(about a minute with 16 cores); a profile of real checkpoints in the local cache gives the same
timings. Sized to finish within 8 minutes on one H200.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.fullsize import PROMPT, child, peak_rss_gb, scene  # noqa: E402 - after the path

SOURCE = "a large red circle moving right over a plain white background"


def methods(tiny: bool) -> dict[str, dict[str, Any]]:
    """name -> {what, spec, steps: {stage: (progress units at the paper's settings)}, paper: {stage: seconds}}.

    The spec runs ``run`` steps of each stage (the few that are timed); ``steps`` is what the paper runs.
    ``--tiny``: the same graph on the tiny-random models at 32x32 (64x64 for SVD's multiple), 4 frames.
    """
    big = not tiny

    def size(w: int, h: int, frames: int) -> dict[str, Any]:
        return scene(w, h, frames) if big else scene(64 if w > h else 32, 32, 4)

    run = 3 if big else 2  # timed steps per stage
    return {
        "sdedit": {
            "what": "SD-1.5 per frame, 512x512 x 8",
            "spec": {
                "method": "sdedit",
                "input": size(512, 512, 8),
                "params": {"variant": "image", "steps": 5, "strength": 0.6, "frame_batch": 8},
            },
            "steps": {"sample": 30},  # 50 DDIM steps at strength 0.6
            "paper": {},
        },
        "videop2p": {
            "what": "SD-1.5 as T2S, 512x512 x 8",
            "spec": {
                "method": "videop2p",
                "input": size(512, 512, 8),
                "params": {
                    "source_prompt": SOURCE,
                    "finetune": {"steps": run},
                    "inversion": {"steps": run, "inner_steps": 10 if big else 2},
                    "mode": "replace",
                },
            },
            "steps": {"finetune": 500, "invert": 50, "nulltext": 50, "sample": 50},
            "paper": {"finetune": 300.0, "invert+nulltext": 360.0, "sample": 60.0},
            "paper_note": "V100",
        },
        "dreamix": {
            "what": "ModelScope UNet3D, 256x256 x 16, full finetune",
            "spec": {
                "method": "dreamix",
                "input": size(256, 256, 16),
                "params": {
                    "finetune_steps": run,
                    "alpha": 0.35,
                    "lr": 6e-6,
                    "steps": 5,
                    "strength": 0.6,
                    "finetune_method": "full",
                    "cascade": [
                        {"role": "video", "width": 256, "height": 256, "frames": 16}
                        if big
                        else {"role": "video", "width": 32, "height": 32, "frames": 4}
                    ],
                },
            },
            "steps": {"finetune": 250, "sample": 30},
            "paper": {},
        },
        "gen1": {
            "what": "ModelScope UNet3D widened + DPT-Large, 256x256 x 16",
            "spec": {
                "method": "gen1",
                "input": size(256, 256, 16),
                "params": {"steps": run, "structure_level": 3, "guidance_scale": 7.5, "temporal_guidance": 1.0},
            },
            "steps": {"sample": 50},
            "paper": {"edit": 60.0},
            "paper_note": "about a minute per video",
        },
        "revideo": {
            "what": "SVD-XT + control, 1024x576 x 25",
            "spec": {
                "method": "revideo",
                "input": size(1024, 576, 25),
                "params": {
                    "steps": run,
                    "decode_chunk": 8,
                    "areas": [{"mask": {"truth": 0, "dilate": 3}, "motion": "keep"}],
                },
            },
            "steps": {"sample": 25},
            "paper": {},
        },
    }


# --------------------------------------------------------------------------- one method, in its own process


def _compile_unets(engine: Any) -> int:
    """``torch.compile`` every UNet the engine holds (in place); how many."""
    import torch

    seen: set[int] = set()
    count = 0

    def visit(obj: Any, depth: int) -> None:
        nonlocal count
        if depth > 3 or id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, torch.nn.Module):
            if "UNet" in type(obj).__name__ or "Control" in type(obj).__name__:
                obj.compile()
                count += 1
            return
        fields = vars(obj) if hasattr(obj, "__dict__") else {}
        if isinstance(obj, dict):
            fields = obj
        for v in list(fields.values()):
            visit(v, depth + 1)

    visit(engine, 0)
    return count


class StepClock:
    """Timestamps of a stage's progress reports: its fixed cost and its median step."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.ticks: list[float] = []
        self.total = 0

    def __call__(self, i: int, n: int) -> None:
        self.ticks.append(time.perf_counter())
        self.total = n

    def split(self, end: float) -> tuple[float, float, int]:
        """``(fixed seconds, seconds per step, steps timed)``."""
        if len(self.ticks) < 2:
            return end - self.start, 0.0, len(self.ticks)
        gaps = [b - a for a, b in zip(self.ticks, self.ticks[1:], strict=False)]
        step = statistics.median(gaps)
        return max(0.0, (end - self.start) - step * len(self.ticks)), step, len(self.ticks)


def run_method(name: str, tiny: bool, profile: str, dtype: str, compile_: bool) -> dict[str, Any]:
    import torch

    from recut.plan import build_plan
    from recut.runner import StageRunner
    from recut.spec import load_spec
    from recut.store import Store

    device = "cpu" if tiny else "cuda"
    m = copy.deepcopy(methods(tiny)[name])
    raw = m["spec"]
    if tiny:
        toy = raw["input"]["toy"]
        m["what"] = f"{profile} {toy['width']}x{toy['height']} x {toy['frames']} (graph of: {m['what']})"
    raw.update(
        {
            "name": f"gpu {name}",
            "model": {"profile": profile, "dtype": dtype},
            "seed": 0,
            "edits": [{"name": "edit", "prompt": PROMPT}],
            "evaluate": {"metrics": ["psnr"]},
        }
    )
    root = Path(tempfile.mkdtemp(prefix=f"gpu-{name}-"))
    (root / ".git").mkdir()
    raw["outputs"] = {"dir": str(root / "out"), "formats": ["npy"]}
    raw["allow_outside_root"] = True
    (root / "spec.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    spec = load_spec(root / "spec.yaml")
    store = Store(root / "store")
    plan = build_plan([spec], store)
    runner = StageRunner(device=device)
    refs: dict[str, Any] = {}
    stages: dict[str, dict[str, Any]] = {}
    out: dict[str, Any] = {"method": name, "what": m["what"], "device": device, "dtype": dtype}
    for node in plan.ordered():
        job = node.job({n: refs[k] for n, k in node.upstream.items()}, str(store.root))
        if job.model is not None and "load_s" not in out:
            # 1. the weights: built on first use (fullsize-random), then loaded, apart from the stage times
            t0 = time.perf_counter()
            for role in job.model.components:
                if role in _roles(name):
                    job.model.location(role)
            out["build_s"] = round(time.perf_counter() - t0, 1)
            eng = runner.engine(job.method, job.model)
            t0 = time.perf_counter()
            if name == "sdedit":
                eng.load("image")
            elif name == "dreamix":
                eng.load("video")
            else:
                eng.ensure_loaded()
            if compile_:
                out["compiled"] = _compile_unets(eng)
            out["load_s"] = round(time.perf_counter() - t0, 1)
        clock = StepClock()
        if device == "cuda":
            torch.cuda.synchronize()
        clock.start = time.perf_counter()
        refs[node.key] = runner.run(job, clock)
        if device == "cuda":
            torch.cuda.synchronize()
        fixed, step, timed = clock.split(time.perf_counter())
        st = node.stage
        paper_steps = m["steps"].get(st.name)
        ours = fixed + step * (paper_steps if paper_steps and timed >= 2 else timed)
        stages[st.name] = {
            "measured_s": round(fixed + step * timed, 2),
            "fixed_s": round(fixed, 2),
            "step_s": round(step, 3),
            "timed_steps": timed,
            "paper_steps": paper_steps,
            "seconds": round(ours, 1),
            "extrapolated": bool(paper_steps and timed >= 2 and paper_steps != timed),
            "per_edit": st.per_edit,
        }
    out["stages"] = stages
    out["edit_s"] = round(sum(s["seconds"] for s in stages.values() if s["per_edit"]), 1)
    out["total_s"] = round(sum(s["seconds"] for s in stages.values()), 1)
    if device == "cuda":
        out["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        out["gpu"] = torch.cuda.get_device_name()
    out["peak_rss_gb"] = round(peak_rss_gb(), 2)
    out["paper"] = m["paper"]
    out["paper_note"] = m.get("paper_note", "")
    shutil.rmtree(root, ignore_errors=True)  # the method's store and outputs
    return out


def _roles(name: str) -> tuple[str, ...]:
    return {
        "sdedit": ("image",),
        "videop2p": ("image",),
        "dreamix": ("video",),
        "gen1": ("gen1",),
        "revideo": ("revideo",),
    }[name]


# --------------------------------------------------------------------------- the driver and the table


def _cell(s: dict[str, Any]) -> str:
    return f"{s['seconds']:.1f}{'*' if s['extrapolated'] else ''}"


def table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| method | setting | seconds per stage | seconds per edit | total s | peak GPU GB | the paper |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "error" in r:
            rows.append(f"| {r['method']} | FAILED | {r['error'].splitlines()[-1][:160]} | | | | |")
            continue
        stages = ", ".join(f"{k} {_cell(s)}" for k, s in r["stages"].items() if k not in ("preprocess", "evaluate"))
        edit_star = "*" if any(s["extrapolated"] for s in r["stages"].values() if s["per_edit"]) else ""
        total_star = "*" if any(s["extrapolated"] for s in r["stages"].values()) else ""
        mem = f"{r['peak_gpu_gb']:.1f}" if "peak_gpu_gb" in r else f"(CPU RSS {r['peak_rss_gb']:.1f})"
        paper = ", ".join(f"{k} {v:.0f} s" for k, v in r["paper"].items())
        if paper and r.get("paper_note"):
            paper += f" ({r['paper_note']})"
        rows.append(
            f"| {r['method']} | {r['what']} | {stages} | {r['edit_s']:.1f}{edit_star} | "
            f"{r['total_s']:.1f}{total_star} | {mem} | {paper or '-'} |"
        )
    rows.append("")
    rows.append(
        "`*` extrapolated: the stage ran a few steps, timed through its progress reports, and is its fixed "
        "cost plus the median step time times the paper's step count. Seconds per edit: the per-edit stages."
    )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="CPU, tiny-random models: check that the script works")
    ap.add_argument("--profile", default=None, help="model profile (default fullsize-random; tiny-random with --tiny)")
    ap.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    ap.add_argument("--compile", action="store_true", help="torch.compile every UNet")
    ap.add_argument("--only", nargs="*", default=[], help="methods to run (default: all)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--timeout", type=float, default=240.0, help="seconds per method before it is abandoned")
    ap.add_argument("--method", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    profile = args.profile or ("tiny-random" if args.tiny else "fullsize-random")
    if args.method:
        print(json.dumps(run_method(args.method, args.tiny, profile, args.dtype, args.compile)))
        return 0
    if not args.tiny:
        import torch

        if not torch.cuda.is_available():
            print("no CUDA device: run on a GPU machine, or use --tiny on the CPU", file=sys.stderr)
            return 2
    if args.tiny:
        import torch

        torch.set_num_threads(1)  # tiny ops on a shared CPU: two OpenMP threads wait on each other (~30x slower)
    t0 = time.perf_counter()
    results = []
    for name in methods(args.tiny):
        if args.only and name not in args.only:
            continue
        if args.tiny:  # in this process: the imports once, seconds in all
            t1 = time.perf_counter()
            try:
                res = run_method(name, True, profile, args.dtype, args.compile)
            except Exception as exc:  # noqa: BLE001 - reported in the table, as a failed child would be
                res = {"error": f"{type(exc).__name__}: {exc}"}
            res["wall_s"] = round(time.perf_counter() - t1, 1)
        else:  # one process per method: its own peak GPU memory
            flags = ["--method", name, "--profile", profile, "--dtype", args.dtype]
            res = child(flags + (["--compile"] if args.compile else []), timeout=args.timeout, script=__file__)
        res.setdefault("method", name)
        print(f"# {name}: {res.get('wall_s', '?')} s", file=sys.stderr, flush=True)
        results.append(res)
    gpu = next((r["gpu"] for r in results if "gpu" in r), "CPU (--tiny)" if args.tiny else "?")
    head = f"{gpu}, {args.dtype}{', torch.compile' if args.compile else ''}, profile {profile}, {dt.date.today()}"
    print(head)
    print(table(results))
    print(f"\n{time.perf_counter() - t0:.0f} s in all", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({"setting": head, "results": results}, indent=1))
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
