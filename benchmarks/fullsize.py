"""Every engine at full size on the CPU: the ``fullsize-random`` profile (benchmarks/RESULTS.md, "Full size").

``--smoke`` runs every method once (sdedit image and video, videop2p, dreamix, gen1, revideo) through
recut's planner and StageRunner (no Prefect, no Ray), on a toy scene at the model's real resolution
or at most halved, 4 frames and the fewest steps of every stage (1 finetune step, 2 inversion steps,
1 null-text iteration, 2 sampling steps). Each case runs in its own process, so its peak RSS is its
own; it reports seconds per stage (the weights' first build and the model load apart) and the peak RSS.

``--memory`` measures what each memory option saves: the same stage run with and without the option
(frame_chunk, frame_batch, attention slicing, VAE tiling and the temporal decoder's chunk, the compute
dtype), peak RSS each.

    python benchmarks/fullsize.py --device cpu --smoke [--only sdedit-image ...] [--json FILE]
    python benchmarks/fullsize.py --device cpu --memory [--only NAME ...]

The weights are built on first use into ~/.cache/recut/fullsize-random ($RECUT_FULLSIZE_DIR), 18 GB for
every role (bfloat16). Not part of the test suite: the smoke took 18 minutes on 2 cores shared with other
work, the first build of every weight included; 4 minutes on the idle machine with the weights built.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PROFILE = "fullsize-random"


def scene(width: int, height: int, frames: int = 4) -> dict[str, Any]:
    """A toy scene (a red circle moving right) at ``width`` x ``height``."""
    return {
        "toy": {
            "objects": [{"shape": "circle", "colour": "red", "size": "large", "motion": "right"}],
            "background": {"kind": "plain", "colour": "white"},
            "frames": frames,
            "width": width,
            "height": height,
            "seed": 3,
        }
    }


PROMPT = "a large green circle moving right over a plain white background"

#: name -> (what it shows, spec without outputs, roles it loads). Sizes: the real resolution or at most halved.
CASES: dict[str, tuple[str, dict[str, Any], tuple[str, ...]]] = {
    "sdedit-image": (
        "SD-1.5 UNet2D per frame, 512x512 (real)",
        {
            "method": "sdedit",
            "input": scene(512, 512),
            "params": {"variant": "image", "steps": 4, "strength": 0.5, "frame_batch": 4},
        },
        ("image",),
    ),
    "sdedit-video": (
        "ModelScope UNet3D over the clip, 256x256 (real)",
        {
            "method": "sdedit",
            "input": scene(256, 256),
            "params": {"variant": "video", "steps": 4, "strength": 0.5},
        },
        ("video",),
    ),
    "sdedit-zeroscope": (
        "zeroscope 576w UNet3D over the clip, 576x320 (real)",
        {
            "method": "sdedit",
            "input": scene(576, 320),
            "params": {"variant": "video", "steps": 4, "strength": 0.5},
            "model": {"path": "@zeroscope"},
        },
        ("zeroscope",),
    ),
    "videop2p": (
        "SD-1.5 inflated to T2S, 512x512 (real)",
        {
            "method": "videop2p",
            "input": scene(512, 512),
            "params": {
                "source_prompt": "a large red circle moving right over a plain white background",
                "finetune": {"steps": 1},
                "inversion": {"steps": 2, "inner_steps": 1},
                "mode": "replace",
            },
        },
        ("image",),
    ),
    "dreamix": (
        "ModelScope UNet3D, 256x256 (real); LoRA finetune (full: see the memory table)",
        {
            "method": "dreamix",
            "input": scene(256, 256),
            "params": {
                "steps": 4,
                "strength": 0.5,
                "finetune_steps": 1,
                "alpha": 1.0,
                "finetune_method": "lora",
                "cascade": [{"role": "video", "width": 256, "height": 256, "frames": 4}],
            },
        },
        ("video",),
    ),
    "gen1": (
        "Gen-1 (ModelScope UNet3D widened, DPT-Large depth, CLIP ViT-L/14), 256x256 (real); two edits: text "
        "content, and image content (CLIP + content projection)",
        {
            "method": "gen1",
            "input": scene(256, 256),
            "params": {"steps": 2, "structure_level": 1},
            "edits": [
                {"name": "text", "prompt": PROMPT},
                {
                    "name": "image",
                    "prompt": PROMPT,
                    "params": {
                        "content": "image",
                        "content_image": str(REPO / "media" / "gen1" / "green-triangle.png"),
                    },
                },
            ],
        },
        ("gen1",),
    ),
    "revideo": (
        "SVD-XT + control module, 512x320 (1024x576 real, halved to the UNet's multiple); frame 0 by SDEdit",
        {
            "method": "revideo",
            "input": scene(512, 320),
            "params": {
                "steps": 2,
                "areas": [
                    {
                        "mask": {"truth": 0, "dilate": 3},
                        "content": {"sdedit": {"prompt": "a large green circle", "strength": 0.5, "steps": 4}},
                        "motion": "keep",
                    }
                ],
            },
        },
        ("revideo", "image"),
    ),
}


# --------------------------------------------------------------------------- one case, in its own process


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB on Linux


def rss_gb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9


def _spec(name: str, raw: dict[str, Any], root: Path, dtype: str | None, model: Any) -> Path:
    raw = copy.deepcopy(raw)
    raw["name"] = f"fullsize {name}"
    m = raw.get("model") or {"profile": PROFILE}
    if m.get("path", "").startswith("@"):  # a folder of the profile as a plain model path (bfloat16 as the profile)
        m = {"path": model.components[m["path"][1:]], "dtype": "bfloat16"}
    if dtype:
        m["dtype"] = dtype
    raw["model"] = m
    raw["seed"] = 0
    raw.setdefault("edits", [{"name": "edit", "prompt": PROMPT}])
    raw["evaluate"] = {"metrics": ["psnr"]}
    raw["outputs"] = {"dir": str(root / "out" / name), "formats": ["npy"]}
    raw["allow_outside_root"] = True
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _load(engine: Any, roles: tuple[str, ...], method: str, variant: str | None) -> None:
    """Load the engine's weights now (so the stage timings exclude the load)."""
    if method == "sdedit":
        engine.load(variant)
    elif method == "dreamix":
        engine.load("video")
    else:
        engine.ensure_loaded()


class RssSampler:
    """The peak RSS of each phase (``phase`` set by the caller), polled every 0.1 s in a thread."""

    def __init__(self) -> None:
        import threading

        self.phase = "start"
        self.peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0.0), rss_gb())

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return {k: round(v, 2) for k, v in self.peaks.items()}


def run_case(name: str, device: str, dtype: str | None, overrides: dict[str, Any], options: dict[str, Any]) -> dict:
    """Plan and run case ``name``; ``{stage: seconds, build, load, peak_rss_gb, ...}``."""
    import dataclasses

    import torch

    from recut.models import resolve
    from recut.plan import build_plan
    from recut.runner import StageRunner
    from recut.spec import load_spec
    from recut.store import Store

    what, raw, roles = CASES[name]
    raw = copy.deepcopy(raw)
    for dotted, value in overrides.items():
        cur = raw
        *head, leaf = dotted.split(".")
        for k in head:
            cur = cur.setdefault(k, {})
        cur[leaf] = value
    out: dict[str, Any] = {"case": name, "what": what, "threads": torch.get_num_threads()}
    model = resolve(profile=PROFILE)
    # 1. the weights (built on first use; timed apart)
    t0 = time.perf_counter()
    for role in roles:
        model.location(role)
    out["build_s"] = round(time.perf_counter() - t0, 1)
    root = Path(tempfile.mkdtemp(prefix=f"fullsize-{name}-"))
    (root / ".git").mkdir()
    spec = load_spec(_spec(name, raw, root, dtype, model))
    store = Store(root / "store")
    plan = build_plan([spec], store)
    runner = StageRunner(device=device)
    stages: dict[str, float] = {}
    refs: dict[str, Any] = {}
    rss_before = rss_gb()
    sampler = RssSampler()
    for node in plan.ordered():
        job = node.job({n: refs[k] for n, k in node.upstream.items()}, str(store.root))
        if options and job.model is not None:
            job.model = dataclasses.replace(job.model, options={**job.model.options, **options})
        if job.model is not None and "load_s" not in out:
            eng = runner.engine(job.method, job.model)
            t0 = time.perf_counter()
            sampler.phase = "load"
            _load(eng, roles, job.method, raw.get("params", {}).get("variant"))
            out["load_s"] = round(time.perf_counter() - t0, 1)
            out["rss_loaded_gb"] = round(rss_gb(), 2)
        t0 = time.perf_counter()
        sampler.phase = node.stage.name
        refs[node.key] = runner.run(job)
        label = node.stage.name
        stages[label] = round(stages.get(label, 0.0) + time.perf_counter() - t0, 1)
        gc.collect()
    out["stages"] = stages
    out["rss_by_stage_gb"] = sampler.stop()
    out["rss_start_gb"] = round(rss_before, 2)
    out["peak_rss_gb"] = round(peak_rss_gb(), 2)
    models = [e.model for e in runner.engines.values() if e.model is not None]
    out["dtype"] = str(models[0].torch_dtype(device)).replace("torch.", "") if models else None
    shutil.rmtree(root, ignore_errors=True)  # the case's store and outputs
    return out


# --------------------------------------------------------------------------- memory options


#: Memory runs take one step of each stage: a peak is reached within a step.
_P2P_ONE = {
    "input": scene(512, 512),
    "params.finetune.steps": 0,
    "params.inversion.steps": 1,
    "params.mode": "none",
}
_SD_ONE = {"params.steps": 2}

#: name -> (what, case, [(label, overrides, options, dtype)])
MEMORY: dict[str, tuple[str, str, list[tuple[str, dict[str, Any], dict[str, Any], str | None]]]] = {
    "frame_chunk": (
        "videop2p, 512x512 x 4 frames, frame attention without attention control (inversion, null-text, "
        "mode none), 1 step each",
        "videop2p",
        [
            ("frame_chunk 0 (all frames at once)", {**_P2P_ONE, "params.frame_chunk": 0}, {}, None),
            ("frame_chunk 1", {**_P2P_ONE, "params.frame_chunk": 1}, {}, None),
        ],
    ),
    "frame_batch": (
        "sdedit image, 512x512 x 4 frames, 1 step: frames per UNet and VAE call (VAE slicing)",
        "sdedit-image",
        [
            ("frame_batch 4", {**_SD_ONE, "params.frame_batch": 4}, {}, None),
            ("frame_batch 1", {**_SD_ONE, "params.frame_batch": 1}, {}, None),
        ],
    ),
    "attention_slicing": (
        "sdedit image, 512x512 x 4 frames, frame_batch 4, 1 step: the profile option attention_slicing",
        "sdedit-image",
        [
            ("SDPA (default)", _SD_ONE, {}, None),
            ("attention slicing auto", _SD_ONE, {"attention_slicing": True}, None),
        ],
    ),
    "decode_chunk": (
        "revideo, 512x320 x 4 frames, 1 step: frames per call of SVD's temporal VAE decoder",
        "revideo",
        [
            ("decode_chunk 4", {"params.steps": 1, "params.decode_chunk": 4}, {}, None),
            ("decode_chunk 1", {"params.steps": 1, "params.decode_chunk": 1}, {}, None),
        ],
    ),
    "dtype": (
        "sdedit video (ModelScope), 256x256 x 4 frames, 1 step: compute dtype",
        "sdedit-video",
        [
            ("bfloat16 (the profile's)", _SD_ONE, {}, None),
            ("float32", _SD_ONE, {}, "float32"),
        ],
    ),
}


def vae_tiling(device: str) -> dict[str, Any]:
    """SD-1.5's VAE decoding one 1024x576 frame (zeroscope XL / SVD size), with and without tiling."""
    import torch
    from diffusers import AutoencoderKL

    from recut.models import resolve

    model = resolve(profile=PROFILE)
    vae = model.from_pretrained(AutoencoderKL, "image", subfolder="vae", torch_dtype=torch.bfloat16).eval()
    z = torch.randn(1, 4, 72, 128, dtype=torch.bfloat16)
    res: dict[str, Any] = {}
    sampler = RssSampler()
    for label, tiled in (("tiled (512 px tiles)", True), ("untiled", False)):
        vae.enable_tiling() if tiled else vae.disable_tiling()
        gc.collect()
        sampler.phase = label
        t0 = time.perf_counter()
        with torch.inference_mode():
            vae.decode(z)
        res[label] = {"seconds": round(time.perf_counter() - t0, 1)}
        sampler.phase = "between"
    peaks = sampler.stop()
    for label in res:
        res[label]["peak_rss_gb"] = peaks.get(label, 0.0)
    return res


# --------------------------------------------------------------------------- the driver


def child(
    args: list[str], env: dict[str, str] | None = None, timeout: float | None = None, script: str = __file__
) -> dict[str, Any]:
    """Run ``script`` (this benchmark, or benchmarks/gpu.py) with ``args`` in its own process (its own
    peak memory); its last JSON line, with ``wall_s``, or ``{"error": ...}``."""
    cmd = [sys.executable, str(Path(script).resolve()), *args]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
        return {
            "error": "\n".join(tail) or f"exit {proc.returncode}",
            "returncode": proc.returncode,
            "wall_s": round(wall, 1),
        }
    res = json.loads(lines[-1])
    res["wall_s"] = round(wall, 1)
    return res


def smoke(device: str, only: list[str]) -> list[dict[str, Any]]:
    results = []
    for name in CASES:
        if only and name not in only:
            continue
        print(f"# {name}: {CASES[name][0]}", file=sys.stderr, flush=True)
        res = child(["--case", name, "--device", device])
        res.setdefault("case", name)
        print(json.dumps(res), file=sys.stderr, flush=True)
        results.append(res)
    return results


def memory(device: str, only: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, (what, case, variants) in MEMORY.items():
        if only and key not in only:
            continue
        rows = []
        for label, overrides, options, dtype in variants:
            args = ["--case", case, "--device", device, "--overrides", json.dumps(overrides)]
            args += ["--options", json.dumps(options)] + (["--dtype", dtype] if dtype else [])
            print(f"# {key}: {label}", file=sys.stderr, flush=True)
            res = child(args)
            res["label"] = label
            print(json.dumps(res), file=sys.stderr, flush=True)
            rows.append(res)
        out[key] = {"what": what, "rows": rows}
    if not only or "vae_tiling" in only:
        out["vae_tiling"] = child(["--vae-tiling", "--device", device])
    return out


def _fmt_stages(stages: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in stages.items())


def print_smoke(results: list[dict[str, Any]]) -> None:
    print("| method | size and model | build s | load s | seconds per stage | total s | peak RSS GB |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        if "error" in r:
            print(f"| {r['case']} | FAILED | | | {r['error'].splitlines()[-1][:200]} | | |")
            continue
        total = r.get("load_s", 0) + sum(r["stages"].values())
        print(
            f"| {r['case']} | {r['what']} | {r['build_s']:.0f} | {r.get('load_s', 0):.1f} | "
            f"{_fmt_stages(r['stages'])} | {total:.0f} | {r['peak_rss_gb']:.1f} |"
        )


def print_memory(out: dict[str, Any]) -> None:
    print("| option | what | setting | peak RSS GB | seconds (stages) |")
    print("|---|---|---|---|---|")
    for key, block in out.items():
        if key == "vae_tiling":
            continue
        for r in block["rows"]:
            if "error" in r:
                print(f"| {key} | {block['what']} | {r['label']} | FAILED: {r['error'].splitlines()[-1][:120]} | |")
                continue
            secs = sum(r["stages"].values())
            print(f"| {key} | {block['what']} | {r['label']} | {r['peak_rss_gb']:.2f} | {secs:.0f} |")
    vt = out.get("vae_tiling")
    if vt and "error" not in vt:
        for label, r in vt.items():
            if isinstance(r, dict):
                print(
                    f"| vae tiling | SD VAE decode of one 1024x576 frame (bfloat16) | {label} | "
                    f"{r['peak_rss_gb']:.2f} | {r['seconds']:.0f} |"
                )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--smoke", action="store_true", help="every method once")
    ap.add_argument("--memory", action="store_true", help="the memory options, with and without")
    ap.add_argument("--only", nargs="*", default=[], help="case or memory-option names")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--dtype", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--overrides", default="{}", help=argparse.SUPPRESS)
    ap.add_argument("--options", default="{}", help=argparse.SUPPRESS)
    ap.add_argument("--vae-tiling", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.case:
        res = run_case(args.case, args.device, args.dtype, json.loads(args.overrides), json.loads(args.options))
        print(json.dumps(res))
        return 0
    if args.vae_tiling:
        print(json.dumps(vae_tiling(args.device)))
        return 0
    t0 = time.perf_counter()
    results: dict[str, Any] = {}
    if args.smoke:
        results["smoke"] = smoke(args.device, args.only)
        print_smoke(results["smoke"])
    if args.memory:
        results["memory"] = memory(args.device, args.only)
        print_memory(results["memory"])
    print(f"\n{time.perf_counter() - t0:.0f} s in all", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    failed = any("error" in r for r in results.get("smoke", []))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
