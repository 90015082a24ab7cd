"""Video-P2P on toy scenes: the figures of benchmarks/RESULTS.md (section "Video-P2P").

    python benchmarks/bench_videop2p.py [--scenes N] [--parts inversion,identity,swap,masks,stages] [--json OUT]
                                        [--set cross_replace=0.2 ...]

Everything runs with the `toy` profile (models/toy/t2i, whatever is committed
there when the script runs), on CPU, one torch thread, 8 frames of 64x64.
Each scene is one object; the edit swaps its colour word for another palette
colour.  Parts:

1. ``inversion`` (the paper's Table 2 at toy scale): PSNR of the input clip
   against its reconstruction from the DDIM-inverted latents, for DDIM without
   guidance (w = 1), plain DDIM inversion sampled with guidance (initial null
   text), shared null-text (Video-P2P) and per-frame null-text (the ablation);
   the VAE round trip is the ceiling.
2. ``identity``: target prompt = source prompt, through the attention-control
   sampler; PSNR against the null-text reconstruction with shared guidance
   (must be identical up to float noise) and with decoupled guidance.
3. ``swap``: colour word swap; success = the ground-truth judge
   (toyworld/judge.py::judge_caption) finds the target colour on the
   object; masked PSNR outside the object (silhouette dilated by one pixel,
   as `evaluate.mask: truth`); success with the rest kept = success and masked PSNR
   >= 20 dB (the judge alone also accepts a frame that turned the target colour
   all over).  Methods: Video-P2P (replace + local blend on the colour words,
   decoupled guidance; also with other injection fractions, with shared
   guidance and without the blend), T2S + DDIM without attention control
   (the TAV+DDIM baseline: tuned T2S, plain DDIM inversion, target prompt with
   the initial null) and the per-frame SDEdit baseline (engines/sdedit,
   strength 0.6, 30 steps).
4. ``masks``: where the local blend mask of the Video-P2P swap (decoupled guidance, blend
   on the colour words) falls: its share of the frame, and against the object (a latent
   cell counts as object when at least a quarter of its pixels are): recall, precision, IoU.
5. ``stages``: one spec with 1 edit and one with 4 edits of the same clip, run
   through recut's planner and StageRunner (no Prefect/Ray) in fresh stores:
   computed stages per kind and wall seconds; then one edit's prompt changes
   and the re-run's recomputed stages are listed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

COLOUR_SWAP = {
    "red": "green",
    "green": "blue",
    "blue": "yellow",
    "yellow": "purple",
    "purple": "orange",
    "orange": "cyan",
    "cyan": "red",
}
#: A swap "keeps the rest" when the masked PSNR outside the object is at least this (dB): the
#: judge alone also accepts a clip whose whole frame turned the target colour.
KEEP_DB = 20.0
SHAPES = ("circle", "square", "triangle")
MOTIONS = ("right", "left", "static", "down", "up")
BACKGROUNDS = (("plain", "white"), ("gradient", "white"), ("plain", "cyan"), ("gradient", "yellow"))

#: The toy settings of the example specs (scaled down from the paper's SD 1.5 ones).
SETTINGS: dict[str, Any] = {
    "frames": 8,
    "finetune_steps": 30,
    "finetune_lr": 1e-4,
    "steps": 20,
    "guidance": 5.0,
    "null_inner": 10,
    "null_lr": 0.1,
    "cross_replace": 0.4,
    "self_replace": 0.4,
    "blend_threshold": 0.3,
    "blend_start": 0.2,
    "sdedit_strength": 0.6,
    "sdedit_steps": 30,
}


def scene_list(n: int) -> list[Any]:
    from toyworld.scene import ToyScene

    out = []
    colours = list(COLOUR_SWAP)
    for i in range(n):
        kind, bg = BACKGROUNDS[i % len(BACKGROUNDS)]
        colour = colours[i % len(colours)]
        if colour == bg or COLOUR_SWAP[colour] == bg:
            colour = colours[(i + 2) % len(colours)]
        obj = {"shape": SHAPES[i % 3], "colour": colour, "size": "large", "motion": MOTIONS[i % len(MOTIONS)]}
        out.append(
            ToyScene.model_validate(
                {
                    "objects": [obj],
                    "background": {"kind": kind, "colour": bg},
                    "frames": SETTINGS["frames"],
                    "seed": 10 + i,
                }
            )
        )
    return out


@dataclass
class Prepared:
    clip: Any
    source: str
    target: str
    keep: np.ndarray
    t2s: Any
    latents: Any
    cond: Any
    null0: Any
    traj: list[Any]
    shared: Any = None
    per_frame: Any = None
    seconds: dict[str, float] | None = None


def _psnr(a: np.ndarray, b: np.ndarray, keep: np.ndarray | None = None) -> float:
    from engines.common.metrics import psnr

    return float(psnr(a, b, keep))


def prepare(engine: Any, scene: Any, per_frame: bool = True) -> Prepared:
    """Finetune, invert and null-text-optimise one scene (as the stages do)."""
    import cv2
    import torch
    from diffusers import DDPMScheduler

    from engines.common.ddim import ddim_invert
    from engines.common.finetune import FinetuneConfig, finetune, select_parameters
    from engines.common.nulltext import NullTextConfig, optimize_null_text
    from engines.videop2p.params import DEFAULT_TRAINABLE
    from toyworld import scene as toy

    c = engine.c
    clip = toy.render(scene)
    src = clip.caption
    colour = scene.objects[0].colour
    tgt = src.replace(f" {colour} ", f" {COLOUR_SWAP[colour]} ", 1)
    edited = clip.full_masks[:, 0]
    kernel = np.ones((3, 3), np.uint8)
    keep = ~np.stack([cv2.dilate(m.astype(np.uint8), kernel) > 0 for m in edited])
    secs: dict[str, float] = {}

    t0 = time.perf_counter()
    latents = c.encode(clip.frames)
    cond, null0 = c.embed(src), c.embed("")
    t2s = engine.fresh_t2s("first")
    params = select_parameters(t2s, DEFAULT_TRAINABLE)
    with torch.enable_grad():
        finetune(
            t2s,
            params,
            (latents, cond),
            DDPMScheduler.from_config(c.scheduler_config),
            FinetuneConfig(steps=SETTINGS["finetune_steps"], lr=SETTINGS["finetune_lr"], seed=0),
        )
    secs["finetune"] = time.perf_counter() - t0

    def eps(x: Any, t: int, text: Any) -> Any:
        return t2s(x, t, text).sample

    t0 = time.perf_counter()
    traj = ddim_invert(lambda x, t: eps(x, t, cond), c.scheduler(), latents, SETTINGS["steps"])
    secs["invert"] = time.perf_counter() - t0
    prep = Prepared(clip, src, tgt, keep, t2s, latents, cond, null0, traj, seconds=secs)
    for name, pf in (("shared", False), ("per_frame", True)):
        if pf and not per_frame:
            continue
        cfg = NullTextConfig(inner_steps=SETTINGS["null_inner"], lr=SETTINGS["null_lr"], per_frame=pf)
        t0 = time.perf_counter()
        with torch.enable_grad():
            res = optimize_null_text(eps, c.scheduler(), traj, cond, null0, SETTINGS["guidance"], cfg)
        secs[f"nulltext_{name}"] = time.perf_counter() - t0
        setattr(prep, name, res.embeddings)
    return prep


def inversion_psnr(engine: Any, p: Prepared) -> dict[str, float]:
    from engines.common.nulltext import guided_reconstruction

    c = engine.c
    steps, w = SETTINGS["steps"], SETTINGS["guidance"]

    def eps(x: Any, t: int, text: Any) -> Any:
        return p.t2s(x, t, text).sample

    frames = p.clip.frames
    z_t = p.traj[-1]
    out = {"vae_roundtrip": _psnr(frames, c.decode(p.latents))}
    out["ddim_no_guidance"] = _psnr(
        frames, c.decode(guided_reconstruction(eps, c.scheduler(), z_t, steps, p.cond, p.null0, 1.0))
    )
    out["ddim_guided"] = _psnr(
        frames, c.decode(guided_reconstruction(eps, c.scheduler(), z_t, steps, p.cond, p.null0, w))
    )
    out["nulltext_shared"] = _psnr(
        frames, c.decode(guided_reconstruction(eps, c.scheduler(), z_t, steps, p.cond, p.shared, w))
    )
    if p.per_frame is not None:
        z = guided_reconstruction(eps, c.scheduler(), z_t, steps, p.cond, p.per_frame, w)
        out["nulltext_per_frame"] = _psnr(frames, c.decode(z))
    return out


def p2p(
    engine: Any,
    p: Prepared,
    target: str,
    *,
    mode: str = "replace",
    blend: bool = True,
    decoupled: bool = True,
    null: str = "shared",
    cross: float | None = None,
    self_: float | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """One attention-controlled edit; returns (edited frames, blend mask or None)."""
    from engines.common.p2p import AttentionController, BlendConfig, ControlConfig, p2p_sample

    c = engine.c
    steps = SETTINGS["steps"]
    colour = p.source.split()[2] if p.source.split()[1] in ("large", "small") else p.source.split()[1]
    new = COLOUR_SWAP.get(colour, colour) if target != p.source else colour
    bc = BlendConfig((colour,), (new,), SETTINGS["blend_threshold"], SETTINGS["blend_start"]) if blend else None
    cfg = ControlConfig(
        mode=mode,  # type: ignore[arg-type]
        cross_replace=SETTINGS["cross_replace"] if cross is None else cross,
        self_replace=SETTINGS["self_replace"] if self_ is None else self_,
        blend=bc,
    )
    ctl = None
    if mode != "none" or bc is not None:
        ctl = AttentionController(cfg, c.tokenizer, p.source, target, steps, p.clip.frames.shape[0])
    emb = {"shared": p.shared, "per_frame": p.per_frame, "none": p.null0.repeat(steps, 1, 1)}[null]
    out = p2p_sample(
        p.t2s,
        c.scheduler(),
        p.traj[-1],
        steps,
        p.cond,
        c.embed(target),
        emb,
        p.null0,
        SETTINGS["guidance"],
        ctl,
        decoupled=decoupled,
    )
    frames = c.decode(out[1:])
    mask = ctl.mask.cpu().numpy() if ctl is not None and ctl.mask is not None else None
    return frames, mask


def mask_stats(mask: np.ndarray, objects: np.ndarray) -> dict[str, float]:
    """Blend mask ``[F, h, w]`` (latent cells) against object silhouettes ``[F, H, W]`` (pixels)."""
    f, h, w = mask.shape
    cells = objects.reshape(f, h, objects.shape[1] // h, w, objects.shape[2] // w).mean(axis=(2, 4)) >= 0.25
    inter = float((mask & cells).sum())
    return {
        "frame_coverage": float(mask.mean()),
        "recall": inter / max(float(cells.sum()), 1.0),
        "precision": inter / max(float(mask.sum()), 1.0),
        "iou": inter / max(float((mask | cells).sum()), 1.0),
    }


def sdedit_baseline(sd_engine: Any, p: Prepared, target: str) -> np.ndarray:
    from recut import video
    from recut.engine import StageContext

    with tempfile.TemporaryDirectory() as d:
        pre = Path(d) / "pre"
        out = Path(d) / "out"
        pre.mkdir()
        out.mkdir()
        video.save_frames(pre / "frames.npy", p.clip.frames)
        (pre / "info.json").write_text(json.dumps({"fps": 8.0}))
        values = {
            "params.strength": SETTINGS["sdedit_strength"],
            "params.steps": SETTINGS["sdedit_steps"],
            "params.guidance_scale": SETTINGS["guidance"],
            "params.eta": 0.0,
            "params.variant": "image",
            "edit.prompt": target,
            "edit.negative_prompt": "",
        }
        sd_engine.run_stage("sample", StageContext(values=values, inputs={"preprocess": pre}, out_dir=out, seed=0))
        return video.load_frames(out / "frames.npy")


def judge_swap(frames: np.ndarray, target: str) -> bool:
    from toyworld.judge import judge_caption

    return bool(judge_caption(frames, target)[0]["colour"])


# --------------------------------------------------------------------------- stages (1 vs 4 edits)

STAGES_SPEC = """\
method: videop2p
input:
  toy:
    objects: [{shape: circle, colour: red, size: large, motion: right}]
    background: {kind: plain, colour: white}
    frames: 8
    seed: 3
model: {profile: toy}
params:
  source_prompt: a large red circle moving right over a plain white background
  finetune: {steps: 30, lr: 1.0e-4}
  inversion: {steps: 20, inner_steps: 10, lr: 0.1}
  guidance_scale: 5.0
  blend: {source_words: [red], target_words: [COLOUR]}
evaluate: [psnr, masked_psnr]
edits:
"""
EDIT_COLOURS = ("green", "blue", "yellow", "purple")


def _stage_spec(folder: Path, colours: tuple[str, ...], name: str, spec_colours: tuple[str, ...] | None = None) -> Path:
    lines = []
    for i, col in enumerate(colours):
        words = f"a large {col} circle moving right over a plain white background"
        lines.append(
            f"  - {{name: e{i}, prompt: {words}, params: {{blend: {{source_words: [red], target_words: [{col}]}}}}}}"
        )
    text = STAGES_SPEC.replace("  blend: {source_words: [red], target_words: [COLOUR]}\n", "") + "\n".join(lines) + "\n"
    path = folder / name
    path.write_text(text)
    return path


def run_spec(path: Path, store_root: Path) -> dict[str, Any]:
    from recut.plan import build_plan
    from recut.runner import run_plan
    from recut.spec import load_spec
    from recut.store import Store

    store = Store(store_root)
    plan = build_plan([load_spec(path)], store)
    computed: dict[str, int] = {}
    stage_seconds: dict[str, float] = {}
    labels = []
    t0 = time.perf_counter()

    def count(node: Any, ref: Any, seconds: float) -> None:
        if not node.cached:
            name = node.stage.name
            computed[name] = computed.get(name, 0) + 1
            stage_seconds[name] = round(stage_seconds.get(name, 0.0) + seconds, 1)
            labels.append(node.label)

    run_plan(plan, store_root, on_node=count)
    return {
        "seconds": round(time.perf_counter() - t0, 1),
        "computed": computed,
        "stage_seconds": stage_seconds,
        "recomputed": labels,
    }


def stage_counts() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        (root / ".git").mkdir()
        one = _stage_spec(root, EDIT_COLOURS[:1], "one.yaml")
        four = _stage_spec(root, EDIT_COLOURS, "four.yaml")
        res = {"1 edit": run_spec(one, root / "store1"), "4 edits": run_spec(four, root / "store4")}
        changed = _stage_spec(root, (*EDIT_COLOURS[:3], "orange"), "four.yaml")
        res["4 edits, one prompt changed"] = run_spec(changed, root / "store4")
        return res


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=6)
    ap.add_argument("--parts", default="inversion,identity,swap,masks,stages")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a SETTINGS entry")
    args = ap.parse_args()
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in SETTINGS:
            ap.error(f"--set {item!r}: unknown setting {key!r}; known: {', '.join(SETTINGS)}")
        SETTINGS[key] = type(SETTINGS[key])(value)
    parts = set(args.parts.split(","))

    import torch

    torch.set_num_threads(1)
    from engines.sdedit.engine import SDEditEngine
    from engines.videop2p.engine import VideoP2PEngine
    from recut.models import resolve

    model = resolve(profile="toy")
    eng = VideoP2PEngine(model)
    eng.load()
    report: dict[str, Any] = {"settings": SETTINGS, "model": model.identity[:12], "scenes": args.scenes}
    print(f"toy profile {model.identity[:12]}; settings {json.dumps(SETTINGS)}", flush=True)

    if parts & {"inversion", "identity", "swap", "masks"}:
        sd = SDEditEngine(model)
        inv_rows, id_rows, swap_rows, mask_rows = [], [], [], []
        for i, scene in enumerate(scene_list(args.scenes)):
            p = prepare(eng, scene, per_frame="inversion" in parts)
            prep_s = {k: round(v, 1) for k, v in (p.seconds or {}).items()}
            print(f"scene {i}: {p.source!r} -> {p.target!r}  prep {json.dumps(prep_s)}", flush=True)
            if "inversion" in parts:
                inv_rows.append(inversion_psnr(eng, p))
                print("  inversion PSNR", {k: round(v, 2) for k, v in inv_rows[-1].items()}, flush=True)
            if "identity" in parts:
                from engines.common.nulltext import guided_reconstruction

                def eps(x: Any, t: int, text: Any, p: Prepared = p) -> Any:
                    return p.t2s(x, t, text).sample

                z = guided_reconstruction(
                    eps, eng.c.scheduler(), p.traj[-1], SETTINGS["steps"], p.cond, p.shared, SETTINGS["guidance"]
                )
                recon = eng.c.decode(z)
                same_shared, _ = p2p(eng, p, p.source, blend=False, decoupled=False)
                same_dec, _ = p2p(eng, p, p.source, blend=False, decoupled=True)
                same_dec_blend, _ = p2p(eng, p, p.source, blend=True, decoupled=True)
                row = {
                    "shared_guidance_vs_recon": _psnr(recon, same_shared),
                    "decoupled_vs_recon": _psnr(recon, same_dec),
                    "decoupled_blend_vs_recon": _psnr(recon, same_dec_blend),
                    "recon_vs_input": _psnr(p.clip.frames, recon),
                }
                id_rows.append(row)
                print("  identity PSNR", {k: round(v, 2) for k, v in row.items()}, flush=True)
            if "swap" in parts:
                row: dict[str, Any] = {}
                outs = {
                    "videop2p": p2p(eng, p, p.target)[0],
                    "videop2p_cross0.2_self0.2": p2p(eng, p, p.target, cross=0.2, self_=0.2)[0],
                    "videop2p_cross0.8_self0.4": p2p(eng, p, p.target, cross=0.8, self_=0.4)[0],
                    "videop2p_shared_guidance": p2p(eng, p, p.target, decoupled=False)[0],
                    "videop2p_no_blend": p2p(eng, p, p.target, blend=False)[0],
                    "t2s_ddim": p2p(eng, p, p.target, mode="none", blend=False, null="none")[0],
                    "sdedit": sdedit_baseline(sd, p, p.target),
                }
                for name, fr in outs.items():
                    ok, kept = judge_swap(fr, p.target), _psnr(p.clip.frames, fr, p.keep)
                    row[name] = {"success": ok, "masked_psnr": kept, "success_kept": ok and kept >= KEEP_DB}
                swap_rows.append(row)
                print(
                    "  swap",
                    json.dumps({k: {"ok": v["success"], "mpsnr": round(v["masked_psnr"], 2)} for k, v in row.items()}),
                    flush=True,
                )

            if "masks" in parts:
                _, mask = p2p(eng, p, p.target)
                assert mask is not None
                mask_rows.append(mask_stats(mask, p.clip.full_masks[:, 0]))
                print("  blend mask", {k: round(v, 3) for k, v in mask_rows[-1].items()}, flush=True)

        def mean(rows: list[dict[str, float]]) -> dict[str, float]:
            return {k: round(float(np.mean([r[k] for r in rows])), 2) for k in rows[0]} if rows else {}

        if inv_rows:
            report["inversion_psnr"] = mean(inv_rows)
        if id_rows:
            report["identity_psnr"] = mean(id_rows)
        if mask_rows:
            report["blend_mask"] = {k: round(float(np.mean([r[k] for r in mask_rows])), 3) for k in mask_rows[0]}
            report["blend_mask_per_scene"] = [{k: round(v, 3) for k, v in r.items()} for r in mask_rows]
        if swap_rows:
            report["swap"] = {
                m: {
                    "success_rate": round(float(np.mean([r[m]["success"] for r in swap_rows])), 3),
                    "success_kept_rate": round(float(np.mean([r[m]["success_kept"] for r in swap_rows])), 3),
                    "masked_psnr": round(float(np.mean([r[m]["masked_psnr"] for r in swap_rows])), 2),
                }
                for m in swap_rows[0]
            }
    if "stages" in parts:
        report["stages"] = stage_counts()
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
