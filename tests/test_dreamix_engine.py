"""The dreamix engine on the tiny-random profile: degradation, finetune deltas, sampling, masking, cascade."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from engines.common import sampling
from engines.common.temporal import frames_mode
from engines.dreamix import ENGINE
from engines.dreamix.engine import FINETUNE, PREPARE, SAMPLE, CascadeStage, chain_problems, effective_cascade
from engines.dreamix.params import DreamixParams
from recut.engine import StageContext
from recut.models import resolve

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def engine() -> Any:
    return ENGINE(resolve(profile="tiny-random"))


def _pre(root: Path, seed: int, t: int = 6) -> Path:
    d = root / f"pre-{seed}-{t}"
    d.mkdir(exist_ok=True)
    np.save(d / "frames.npy", np.random.default_rng(seed).integers(0, 256, (t, 40, 48, 3), dtype=np.uint8))
    (d / "info.json").write_text(json.dumps({"fps": 12.0}))
    return d


def _run(engine: Any, root: Path, stage: str, inputs: dict[str, Path], seed: int = 0, **over: Any) -> tuple[Path, dict]:
    p = DreamixParams(**{"finetune_prompt": "a clip", "finetune_steps": 0, "cascade": "none", **over})
    params = p.model_dump(mode="json")
    st = ENGINE.stage(stage)
    values: dict[str, Any] = {r: params[r[7:]] for r in st.reads + st.options if r.startswith("params.")}
    values.update({"model": {}, "seed": seed, "edit.prompt": "a red square", "edit.negative_prompt": ""})
    out = root / f"{stage}-{len(list(root.iterdir()))}"
    out.mkdir()
    calls: list[tuple[int, int]] = []
    meta = engine.run_stage(stage, StageContext(values, inputs, out, lambda i, n: calls.append((i, n)), seed))
    meta["_calls"] = calls
    return out, meta


def test_stage_graph_and_reads() -> None:
    assert [s.name for s in ENGINE.stages] == ["preprocess", "prepare", "finetune", "sample", "evaluate"]
    assert "params.strength" not in FINETUNE.reads and "edit.prompt" not in FINETUNE.reads  # reused across s, prompts
    assert "params.finetune_steps" not in SAMPLE.reads and SAMPLE.after == ("prepare", "finetune")
    assert "params.frame_batch" in SAMPLE.options and "params.frame_batch" not in SAMPLE.reads
    assert PREPARE.after == ("preprocess",) and ENGINE.stage("evaluate").after == ("prepare", "sample")
    assert all(f.description for f in DreamixParams.model_fields.values())


def test_param_defaults_follow_the_paper() -> None:
    p = DreamixParams()
    assert (p.alpha, p.finetune_steps, p.strength) == (None, None, None)  # filled by the stages, per mode
    f = p.filled()
    assert (f.lr, f.alpha, f.finetune_steps, f.strength) == (6e-6, 0.35, 250, 0.7)
    assert DreamixParams(alpha=1.0).filled().finetune_steps == 64
    assert DreamixParams(alpha=0.0).filled().finetune_steps == 100
    a = DreamixParams(mode="animate").filled()
    assert (a.alpha, a.finetune_steps) == (0.0, 100)
    s = DreamixParams(mode="subject").filled()
    assert (s.alpha, s.strength) == (0.0, 1.0)
    assert DreamixParams(finetune_steps=7, alpha=1.0).filled().finetune_steps == 7


def test_prepare_degrades_to_the_base_model(engine: Any, tmp_path: Path) -> None:
    out, meta = _run(engine, tmp_path, "prepare", {"preprocess": _pre(tmp_path, 0)})
    frames = np.load(out / "frames.npy")
    assert frames.shape == (4, 32, 32, 3)  # tiny-random base: 32x32, 4 frames
    assert meta["source_frames"] == [0, 2, 3, 5] and meta["fps"] == pytest.approx(12.0 * 4 / 6)
    out2, meta2 = _run(engine, tmp_path, "prepare", {"preprocess": _pre(tmp_path, 0)}, base_frames=3)
    assert np.load(out2 / "frames.npy").shape[0] == 3 and meta2["source_frames"] == [0, 2, 5]


def test_strength_zero_returns_the_input_through_the_vae(engine: Any, tmp_path: Path) -> None:
    prep, _ = _run(engine, tmp_path, "prepare", {"preprocess": _pre(tmp_path, 0)})
    ft, _ = _run(engine, tmp_path, "finetune", {"prepare": prep})
    out, meta = _run(engine, tmp_path, "sample", {"prepare": prep, "finetune": ft}, strength=0.0, seed=1)
    assert meta["steps_run"] == 0 and meta["_calls"] == []
    c = engine._components["video"]
    frames = np.load(prep / "frames.npy")
    with torch.inference_mode():
        rec = sampling.decode(c, sampling.encode(c, frames, 8), 8)
    assert np.array_equal(np.load(out / "frames.npy"), rec)
    assert not np.array_equal(rec, frames)  # it did go through the VAE


def test_strength_one_ignores_the_input(engine: Any, tmp_path: Path) -> None:
    outs = []
    for seed in (0, 1):
        prep, _ = _run(engine, tmp_path, "prepare", {"preprocess": _pre(tmp_path, seed)})
        ft, _ = _run(engine, tmp_path, "finetune", {"prepare": prep})
        out, meta = _run(engine, tmp_path, "sample", {"prepare": prep, "finetune": ft}, strength=1.0, steps=4)
        assert meta["steps_run"] == 4 and meta["_calls"][-1] == (4, 4)
        outs.append(np.load(out / "frames.npy"))
    assert np.array_equal(outs[0], outs[1])
    prep, _ = _run(engine, tmp_path, "prepare", {"preprocess": _pre(tmp_path, 1)})
    half, _ = _run(engine, tmp_path, "sample", {"prepare": prep, "finetune": ft}, strength=0.5, steps=4)
    assert not np.array_equal(np.load(half / "frames.npy"), outs[0])


def test_frames_mode_makes_frames_independent(engine: Any) -> None:
    import copy

    unet = copy.deepcopy(engine._get("video").unet)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # tiny-random temporal layers start near identity; make them mix frames
        for name, p in unet.named_parameters():
            if "temp" in name or "transformer_in" in name:
                p.add_(torch.randn(p.shape, generator=g) * 0.1)
    x = torch.randn(1, 4, 5, 8, 8, generator=g)
    x2 = x.clone()
    x2[:, :, 3] += 1.0  # perturb frame 3 only
    cond = torch.randn(1, 16, 32, generator=g)
    others = [0, 1, 2, 4]
    with torch.no_grad():
        a, b = (unet(v, 10, encoder_hidden_states=cond).sample for v in (x, x2))
        assert (a - b)[:, :, others].abs().max() > 1e-3  # video mode: frames talk to each other
        with frames_mode(unet):
            fa, fb = (unet(v, 10, encoder_hidden_states=cond).sample for v in (x, x2))
            alone = unet(x[:, :, 1:2], 10, encoder_hidden_states=cond).sample
        assert torch.equal(fa[:, :, others], fb[:, :, others])
        assert (fa - fb)[:, :, 3].abs().max() > 1e-3
        assert torch.allclose(alone[:, :, 0], fa[:, :, 1], atol=1e-5)  # a frame alone = the frame in the set
        c = unet(x, 10, encoder_hidden_states=cond).sample
    assert torch.equal(a, c)  # restored on exit


def test_finetune_deltas_full_vs_lora(engine: Any, tmp_path: Path) -> None:
    prep, _ = _run(engine, tmp_path, "prepare", {"preprocess": _pre(tmp_path, 0)})
    full, mf = _run(engine, tmp_path, "finetune", {"prepare": prep}, finetune_steps=2, lr=1e-3, alpha=0.5)
    lora, ml = _run(engine, tmp_path, "finetune", {"prepare": prep}, finetune_steps=2, lr=1e-3, finetune_method="lora")
    n_unet = sum(p.numel() for p in engine._get("video").unet.parameters())
    assert mf["trained_numel"] == n_unet and ml["trained_numel"] < n_unet / 10
    assert ml["delta_bytes"] * 10 < mf["delta_bytes"]
    assert mf["_calls"] == [(1, 2), (2, 2)] and mf["video_steps"] + mf["frames_steps"] == 2
    _, only_video = _run(engine, tmp_path, "finetune", {"prepare": prep}, finetune_steps=2, alpha=1.0)
    _, only_frames = _run(engine, tmp_path, "finetune", {"prepare": prep}, finetune_steps=2, alpha=0.0)
    assert (only_video["video_steps"], only_frames["frames_steps"]) == (2, 2)
    # the delta changes the sample; the resident UNet is untouched
    before = {k: v.clone() for k, v in engine._get("video").unet.state_dict().items()}
    none, _ = _run(engine, tmp_path, "finetune", {"prepare": prep})
    outs = [
        np.load(
            _run(engine, tmp_path, "sample", {"prepare": prep, "finetune": d}, strength=0.6, steps=4)[0] / "frames.npy"
        )
        for d in (none, full, lora)
    ]
    assert not np.array_equal(outs[0], outs[1]) and not np.array_equal(outs[0], outs[2])
    after = engine._get("video").unet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # same finetune twice: the same delta (seeded)
    again, _ = _run(engine, tmp_path, "finetune", {"prepare": prep}, finetune_steps=2, lr=1e-3, alpha=0.5)
    from safetensors.torch import load_file

    d1, d2 = (load_file(str(d / "delta.safetensors")) for d in (full, again))
    assert d1.keys() == d2.keys() and all(torch.equal(d1[k], d2[k]) for k in d1)


def test_cascade_and_chunks(engine: Any, tmp_path: Path) -> None:
    prep, _ = _run(engine, tmp_path, "prepare", {"preprocess": _pre(tmp_path, 0)})
    ft, _ = _run(engine, tmp_path, "finetune", {"prepare": prep})
    out, meta = _run(engine, tmp_path, "sample", {"prepare": prep, "finetune": ft}, cascade="profile", steps=4)
    assert np.load(out / "frames.npy").shape == (4, 64, 64, 3)  # base 32x32 -> v2v 64x64
    assert [r["shape"] for r in meta["cascade"]] == [[4, 32, 32], [4, 64, 64]]
    assert meta["steps_run"] == 3 + 2 and meta["_calls"][-1] == (5, 5)
    whole, _ = _run(engine, tmp_path, "sample", {"prepare": prep, "finetune": ft}, steps=4)
    chunk, _ = _run(engine, tmp_path, "sample", {"prepare": prep, "finetune": ft}, steps=4, chunk_frames=2)
    chunk4, _ = _run(engine, tmp_path, "sample", {"prepare": prep, "finetune": ft}, steps=4, chunk_frames=4)
    w, c, c4 = (np.load(d / "frames.npy") for d in (whole, chunk, chunk4))
    assert np.array_equal(w, c4) and not np.array_equal(w, c)


def test_cascade_chain_rules() -> None:
    base = {"width": 32, "height": 32, "frames": 4}
    ok = [CascadeStage(**base), CascadeStage(kind="v2v", width=64, height=64, frames=4, **{"from": (32, 32, 4)})]
    assert chain_problems(ok) == []
    bad = [CascadeStage(**base), CascadeStage(kind="v2v", width=64, height=64, frames=4, **{"from": (40, 32, 4)})]
    assert chain_problems(bad) == [
        ("1.from", "stage 1 takes 40x32x4 (width x height x frames), but stage 0 produces 32x32x4")
    ]
    shrink = [CascadeStage(**base), CascadeStage(kind="v2v", width=16, height=32, frames=4)]
    assert chain_problems(shrink)[0][0] == "1"
    assert chain_problems([CascadeStage(kind="v2v", **base)])[0][0] == "0.kind"
    prof = resolve(profile="zeroscope").cascade
    stages = effective_cascade("profile", prof, None)
    assert [(s.role, s.width, s.height) for s in stages] == [("video", 576, 320), ("video_xl", 1024, 576)]
    assert chain_problems(stages) == [] and len(effective_cascade("none", prof, None)) == 1
    assert [s.frames for s in effective_cascade("profile", prof, 12)] == [12, 12]


def test_strength_one_matches_the_diffusers_text_to_video_pipeline(engine: Any, tmp_path: Path) -> None:
    """At s = 1 (eta 0) the sampler is plain text-to-video: the same frames as TextToVideoSDPipeline."""
    from diffusers import TextToVideoSDPipeline

    prep, _ = _run(engine, tmp_path, "prepare", {"preprocess": _pre(tmp_path, 0)})
    ft, _ = _run(engine, tmp_path, "finetune", {"prepare": prep})
    out, _ = _run(
        engine,
        tmp_path,
        "sample",
        {"prepare": prep, "finetune": ft},
        strength=1.0,
        steps=5,
        eta=0.0,
        seed=7,
        guidance_scale=4.0,
    )
    ours = np.load(out / "frames.npy").astype(int)
    c = engine._get("video")
    pipe = TextToVideoSDPipeline(
        vae=c.vae,
        text_encoder=c.text_encoder,
        tokenizer=c.tokenizer,
        unet=c.unet,
        scheduler=sampling.schedule(c.scheduler_config, 5, 1.0)[0],
    )
    pipe.set_progress_bar_config(disable=True)
    ref = pipe(
        "a red square",
        num_frames=4,
        height=32,
        width=32,
        num_inference_steps=5,
        guidance_scale=4.0,
        generator=torch.Generator().manual_seed(7),
        output_type="np",
    ).frames[0]
    ref = (np.asarray(ref) * 255).round().astype(int)
    assert ours.shape == ref.shape and np.abs(ours - ref).max() <= 1


def test_guidance_interval_reaches_the_sampler(engine: Any, tmp_path: Path) -> None:
    """At s = 0.5 no timestep of the run lies in [0.26, 0.49] * T (the tiny model's 4-step grid is
    t = 751, 501, 251, 1), so guiding only there is no guidance (eta 0); a window wholly above s
    is refused by the params."""
    prep, _ = _run(engine, tmp_path, "prepare", {"preprocess": _pre(tmp_path, 0)})
    ft, _ = _run(engine, tmp_path, "finetune", {"prepare": prep})
    ins = {"prepare": prep, "finetune": ft}
    kw = {"strength": 0.5, "steps": 4, "eta": 0.0, "guidance_scale": 4.0}
    outside, _ = _run(engine, tmp_path, "sample", ins, guidance_interval=(0.26, 0.49), **kw)
    unguided, _ = _run(engine, tmp_path, "sample", ins, **{**kw, "guidance_scale": 1.0})
    guided, _ = _run(engine, tmp_path, "sample", ins, **kw)
    frames = [np.load(d / "frames.npy") for d in (outside, unguided, guided)]
    assert np.array_equal(frames[0], frames[1]) and not np.array_equal(frames[2], frames[1])
    assert "params.guidance_interval" in SAMPLE.reads
    with pytest.raises(ValueError, match=r"guidance_interval \[0.9, 1.0\] starts at or above strength 0.5"):
        DreamixParams(strength=0.5, guidance_interval=(0.9, 1.0))


def test_the_rare_token_goes_where_the_spec_says(engine: Any, tmp_path: Path) -> None:
    """``rare_token_position`` puts the token before (the paper's 'sks a dog') or after the finetune
    prompt; it is part of the finetune's cache key."""
    assert "params.rare_token_position" in FINETUNE.reads
    prep, _ = _run(engine, tmp_path, "prepare", {"preprocess": _pre(tmp_path, 0)})
    texts = {
        pos: _run(engine, tmp_path, "finetune", {"prepare": prep}, finetune_steps=1, rare_token_position=pos)[1]["text"]
        for pos in ("start", "end")
    }
    assert texts == {"start": "sks a clip", "end": "a clip sks"}
    with pytest.raises(ValueError, match="rare_token_position"):
        DreamixParams(rare_token_position="middle")
