"""Toy zoo part B: text-to-image / text-to-video UNets (toyworld/zoo/t2i.py, t2v.py).

Quick-mode trainings (seconds) must produce folders the diffusers pipeline classes load
offline; the committed models (models/toy/t2i, models/toy/t2v), when present, must load and
sample the right shapes, and the T2I model must follow the colour of most prompts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from toyworld.zoo import t2i, t2v  # noqa: E402

T2I_DIR = t2i.DEFAULT_OUT
T2V_DIR = t2v.DEFAULT_OUT


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _committed(folder: Path) -> bool:
    return (folder / "unet" / "config.json").exists() and all((folder / c).exists() for c in t2i.COMPONENTS)


def _assert_layout(folder: Path, pipeline_class: str) -> None:
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == pipeline_class
    assert index["scheduler"] == ["diffusers", "DDIMScheduler"]
    sched = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    assert sched["beta_schedule"] == "scaled_linear" and sched["num_train_timesteps"] == 1000
    assert (sched["beta_start"], sched["beta_end"]) == (0.00085, 0.012)
    for c in t2i.COMPONENTS:
        link = folder / c
        assert link.is_symlink() and not os.path.isabs(os.readlink(link)), c
        assert link.resolve().is_dir(), c


@pytest.fixture(scope="module")
def quick_t2i(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("t2i") / "t2i"
    figs = t2i.train(out, quick=True, log=None)
    assert figs["quick"] and np.isfinite(figs["final_loss"]) and figs["threads"] == 1
    return out


def test_quick_t2i_trains_and_loads(quick_t2i: Path) -> None:
    _assert_layout(quick_t2i, "StableDiffusionPipeline")
    pipe = t2i.load_pipeline(quick_t2i)
    imgs = t2i.sample(pipe, ["a red circle over a plain white background", ""], steps=2, guidance=3.0)
    assert imgs.shape == (2, 64, 64, 3) and imgs.dtype == np.uint8


def test_quick_training_is_deterministic(tmp_path: Path, quick_t2i: Path) -> None:
    t2i.train(tmp_path / "again", quick=True, log=None)
    from safetensors.torch import load_file

    a = load_file(quick_t2i / "unet" / "diffusion_pytorch_model.safetensors")
    b = load_file(tmp_path / "again" / "unet" / "diffusion_pytorch_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_quick_t2v_trains_and_loads(tmp_path: Path, keep_torch_threads) -> None:
    out = tmp_path / "t2v"
    figs = t2v.train(out, quick=True, log=None, threads=2)
    assert np.isfinite(figs["final_loss"]) and figs["temporal_weight"] == t2v.TEMPORAL_WEIGHT and figs["threads"] == 2
    assert figs["prediction_type"] == "v_prediction" and figs["zero_terminal_snr"]
    # the recipe's cooldown, capped at the run's steps; the spatial layers start from the T2I's
    assert figs["cooldown"] == figs["planned_steps"] and figs["init_from"] == "models/toy/t2i/unet"
    _assert_layout(out, "TextToVideoSDPipeline")
    pipe = t2v.load_pipeline(out)
    # the pipeline samples with the schedule the UNet was trained on: zero terminal SNR, v, trailing
    cfg = pipe.scheduler.config
    assert (cfg.prediction_type, cfg.rescale_betas_zero_snr, cfg.timestep_spacing) == ("v_prediction", True, "trailing")
    pipe.scheduler.set_timesteps(4)
    assert int(pipe.scheduler.timesteps[0]) == 999 and float(pipe.scheduler.alphas_cumprod[999]) < 1e-6
    clips = t2v.sample(
        pipe, ["a red circle moving left over a plain white background"], steps=2, guidance=3.0, frames=4
    )
    assert clips.shape == (1, 4, 64, 64, 3) and clips.dtype == np.uint8


def test_judges_on_ground_truth() -> None:
    """The judges accept rendered toy frames of the prompt (so a failing check is the model's fault)."""
    from toyworld import scene as toy

    prompts = t2i.heldout_prompts(12)
    for i, p in enumerate(prompts):
        s = toy.sample_scene(
            np.random.default_rng([t2i.HELDOUT_SEED, i]), max_objects=1, frames=1, motions=("static",), pan_prob=0.0
        )
        assert toy.caption(s) == p
        r = t2i.judge_image(toy.render(s).frames[0], p)
        assert r["colour_ok"] and r["shape_ok"], (p, r)
    for i, p in enumerate(t2v.heldout_prompts(8)):
        s = toy.sample_scene(
            np.random.default_rng([t2v.HELDOUT_SEED, i]),
            max_objects=1,
            frames=t2v.FRAMES,
            motions=(t2v.DIRECTIONS[i % 4],),
            pan_prob=0.0,
        )
        r = t2v.judge_clip(toy.render(s).frames, p)
        assert r["colour_ok"] and r["motion_ok"], (p, r)


@pytest.mark.skipif(not _committed(T2I_DIR), reason="models/toy/t2i not trained")
def test_committed_t2i_samples_follow_colour_and_shape() -> None:
    """The committed T2I follows the colour and shape of most held-out prompts at 10 DDIM steps (the
    full check is 48 prompts at 30 steps)."""
    _assert_layout(T2I_DIR, "StableDiffusionPipeline")
    pipe = t2i.load_pipeline(T2I_DIR)
    prompts = t2i.heldout_prompts(16)
    imgs = t2i.sample(pipe, prompts, steps=10, guidance=5.0)
    assert imgs.shape == (16, 64, 64, 3)
    verdicts = [t2i.judge_image(im, p) for im, p in zip(imgs, prompts, strict=True)]
    colour = sum(v["colour_ok"] for v in verdicts)
    both = sum(v["shape_ok"] for v in verdicts)
    assert colour >= 15, f"only {colour}/16 samples show the prompt's colour"
    assert both >= 12, f"only {both}/16 samples show the prompt's colour and shape"


@pytest.mark.skipif(not _committed(T2V_DIR), reason="models/toy/t2v not trained")
def test_committed_t2v_samples_follow_colour_and_motion() -> None:
    """The committed T2V follows held-out prompts' colour and direction at 20 DDIM steps (the full
    check is 48 prompts at 30 steps).  Its shapes are not asserted: its colour+shape figure is just
    below the bar (benchmarks/ZOO.md)."""
    _assert_layout(T2V_DIR, "TextToVideoSDPipeline")
    pipe = t2v.load_pipeline(T2V_DIR)
    prompts = t2v.heldout_prompts(8)
    clips = t2v.sample(pipe, prompts, steps=20, guidance=5.0)
    assert clips.shape == (8, t2v.FRAMES, 64, 64, 3)
    verdicts = [t2v.judge_clip(c, p) for c, p in zip(clips, prompts, strict=True)]
    colour = sum(v["colour_ok"] for v in verdicts)
    motion = sum(v["motion_ok"] for v in verdicts)
    assert colour >= 7, f"only {colour}/8 clips show the prompt's colour"
    assert motion >= 6, f"only {motion}/8 clips move the way the prompt says: {[v['motion'] for v in verdicts]}"


@pytest.mark.skipif(not _committed(T2V_DIR), reason="models/toy/t2v not trained")
def test_t2v_sampler_is_the_pipeline_with_a_guidance_interval() -> None:
    """:func:`t2v.sample` (recut's shared DDIM loop) guiding at every step gives the clips of
    TextToVideoSDPipeline's own call (to one grey level, from float rounding in the decode); with the
    check's guidance interval the clips differ."""
    pipe = t2v.load_pipeline(T2V_DIR)
    prompts = t2v.heldout_prompts(3)
    ref = t2i.sample(pipe, prompts, steps=4, guidance=5.0, seed=3, batch=2, num_frames=t2v.FRAMES)
    ours = t2v.sample(pipe, prompts, steps=4, guidance=5.0, seed=3, batch=2)
    diff = np.abs(ref.astype(int) - ours)
    assert ours.shape == ref.shape and diff.max() <= 1 and (diff > 0).mean() < 1e-3
    windowed = t2v.sample(pipe, prompts, steps=4, guidance=5.0, seed=3, batch=2, interval=t2v.GUIDANCE_INTERVAL)
    assert np.abs(windowed.astype(int) - ours).max() > 10


def test_t2v_check_refuses_a_bad_guidance_interval(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        t2v.main(["check", str(T2V_DIR), "--guidance-interval", "0.8", "0.2"])
    assert exc.value.code == 2 and "0 <= low < high <= 1, got [0.8, 0.2]" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        t2v.main(["check", str(T2V_DIR), "--guidance-interval", "0.5", "2"])
    assert exc.value.code == 2 and "--guidance-interval: must be a number in [0, 1], got '2'" in capsys.readouterr().err
    # validation prompts can be checked, but only the held-out check is recorded
    info = (T2V_DIR / "zoo_info.json").read_bytes()
    with pytest.raises(SystemExit) as exc:
        t2v.main(["check", str(T2V_DIR), "--record", "--prompt-seed", "9300"])
    assert exc.value.code == 2 and "--record stores the held-out check (prompt seed 9100)" in capsys.readouterr().err
    assert (T2V_DIR / "zoo_info.json").read_bytes() == info


@pytest.mark.parametrize("model", [t2i, t2v], ids=["t2i", "t2v"])
def test_resume_continues_the_run_exactly(tmp_path: Path, model) -> None:
    """A run resumed from a checkpoint's train_state (safetensors + JSON, no pickle) ends bit-identical
    to the uninterrupted run (the T2V's through its LR cooldown)."""
    kw = dict(quick=True, log=None, steps=4, save_every=2)
    model.train(tmp_path / "full", **kw)
    model.train(tmp_path / "resumed", resume=tmp_path / "full" / "checkpoints" / "step-2", **kw)
    a, b = _unet_files(tmp_path / "full"), _unet_files(tmp_path / "resumed")
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = _unet_files(tmp_path / "full" / "checkpoints" / "step-2")
    assert not all(torch.equal(a[k], c[k]) for k in a)  # the checkpoint is an earlier state


def test_resume_refuses_a_folder_without_a_training_state(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        t2i.main(["train", "--quick", "--out", str(tmp_path / "out"), "--resume", str(tmp_path)])
    assert exc.value.code == 2 and f"checkpoint '{tmp_path}' has no train_state.json" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_lr_warms_up_stays_constant_and_cools_down() -> None:
    """Warm-up over WARMUP steps, then flat, so checkpoint k of a run equals a k-step run; a
    cooldown falls linearly to 0 over the last steps."""
    w = t2i.WARMUP
    assert t2i.lr_factor(0, 10 * w) == 1 / w and t2i.lr_factor(w - 1, 10 * w) == 1.0
    assert t2i.lr_factor(5 * w, 10 * w) == t2i.lr_factor(5 * w, 6 * w) == 1.0
    steps, cooldown = 10 * w, 4 * w
    assert t2i.lr_factor(steps - cooldown, steps, cooldown) == 1.0
    assert t2i.lr_factor(steps - cooldown // 2, steps, cooldown) == 0.5
    assert t2i.lr_factor(steps - 1, steps, cooldown) == 1 / cooldown
    with pytest.raises(ValueError, match=r"cooldown must be between 0 and the run's steps \(3\), got 5"):
        t2i.Fit(steps=3, batch=1, cooldown=5)


def test_prediction_target_follows_the_scheduler() -> None:
    from diffusers import DDPMScheduler

    from engines.common.finetune import prediction_target

    x0, noise, t = torch.randn(2, 4, 3, 8, 8), torch.randn(2, 4, 3, 8, 8), torch.tensor([10, 999])
    eps = t2i.ddpm_scheduler()
    assert prediction_target(eps, x0, noise, t) is noise
    v = t2i.ddpm_scheduler(t2v.SCHEDULE)
    a = v.alphas_cumprod[t].view(-1, 1, 1, 1, 1)
    assert torch.allclose(prediction_target(v, x0, noise, t), a.sqrt() * noise - (1 - a).sqrt() * x0, atol=1e-6)
    # zero terminal SNR: at t = 999 the input is pure noise and the target is -x0
    assert torch.allclose(prediction_target(v, x0, noise, t)[1], -x0[1], atol=1e-3)
    bad = DDPMScheduler(prediction_type="sample")
    with pytest.raises(ValueError, match="prediction_type"):
        prediction_target(bad, x0, noise, t)


def test_swap_word_changes_only_the_named_attribute() -> None:
    cap = "a small red circle moving up over a plain white background"
    assert t2v.swap_word(cap, "motion") == "a small red circle moving down over a plain white background"
    assert t2v.swap_word(cap, "colour") == "a small blue circle moving up over a plain white background"
    with pytest.raises(ValueError, match="attribute"):
        t2v.swap_word(cap, "size")


def test_conditioning_sensitivity_sees_whether_the_unet_reads_the_caption(tmp_path: Path) -> None:
    """A random UNet reads its caption (both swaps change its prediction); the same UNet with
    its cross-attention keys and values zeroed cannot (both figures exactly 0)."""
    torch.manual_seed(0)
    unet = t2v.build_unet(t2i.text_hidden_size(t2i.default_components()), 16, quick=True)
    reads = t2i.save_pipeline(tmp_path / "reads", unet, t2i.default_components(), "TextToVideoSDPipeline")
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if ".attn2.to_k." in name or ".attn2.to_v." in name:
                p.zero_()
    blind = t2i.save_pipeline(tmp_path / "blind", unet, t2i.default_components(), "TextToVideoSDPipeline")
    keys = [f"{a}_rel_error_t{t}" for a in ("motion", "colour") for t in t2v.PROBE_TIMESTEPS]
    seen = t2v.conditioning_sensitivity(reads, n_clips=4)
    assert seen["n_clips"] == 4 and all(abs(seen[k]) > 1e-5 for k in keys), seen
    none = t2v.conditioning_sensitivity(blind, n_clips=4)
    assert all(none[k] == 0.0 for k in keys), none


def test_a_saved_unet_is_float16_on_disk_and_the_model_stays_as_it_was(tmp_path: Path) -> None:
    """The zoo stores UNets in float16 (its size budget) without touching the model being trained:
    an EMA or the next training step still sees the same float32 parameters."""
    from diffusers import UNet3DConditionModel
    from safetensors.torch import load_file

    torch.manual_seed(0)
    unet = t2v.build_unet(t2i.text_hidden_size(t2i.default_components()), 16, quick=True)
    before = list(unet.parameters())
    values = [p.detach().clone() for p in before]
    folder = t2i.save_pipeline(tmp_path / "p", unet, t2i.default_components(), "TextToVideoSDPipeline")
    assert all(a is b and b.dtype == torch.float32 for a, b in zip(before, unet.parameters(), strict=True))
    assert all(torch.equal(v, p) for v, p in zip(values, unet.parameters(), strict=True))
    disk = load_file(folder / "unet" / "diffusion_pytorch_model.safetensors")
    assert {t.dtype for t in disk.values()} == {torch.float16}
    back = UNet3DConditionModel.from_pretrained(folder / "unet")
    assert back.dtype == torch.float32
    sd = unet.state_dict()
    assert all(torch.equal(sd[k].half().float(), v) for k, v in back.state_dict().items())


@pytest.mark.skipif(not _committed(T2V_DIR), reason="models/toy/t2v not trained")
def test_checks_report_their_bar_figures(quick_t2i: Path) -> None:
    """`check` of both trainers on a tiny budget: the figures the bars are judged on, and the
    T2V's conditioning probe."""
    f2 = t2i.check(quick_t2i, n_prompts=2, steps=2)
    assert f2["n_prompts"] == 2 and 0.0 <= f2["colour_shape_acc"] <= f2["colour_acc"] <= 1.0
    assert f2["passed"] == (f2["colour_shape_acc"] >= t2i.BAR_COLOUR_SHAPE)
    f3 = t2v.check(T2V_DIR, n_prompts=2, steps=2)
    assert f3["frames"] == t2v.FRAMES and 0.0 <= f3["motion_acc"] <= 1.0 and f3["prompt_seed"] == t2v.HELDOUT_SEED
    # what the judge read for each asked direction (held-out prompts cycle left, right, up, down)
    asked = {d: sum(c.values()) for d, c in f3["motion_predicted"].items()}
    assert asked == {"left": 1, "right": 1}
    # ... and for each asked shape (both checks)
    for f, n in ((f2, 2), (f3, 2)):
        assert sum(sum(c.values()) for c in f["shape_predicted"].values()) == n, f
        assert set(f["shape_predicted"]) <= {"circle", "square", "triangle"}
    assert f3["passed"] == (f3["colour_shape_acc"] >= t2v.BAR_COLOUR_SHAPE and f3["motion_acc"] >= t2v.BAR_MOTION)
    assert f3["conditioning_sensitivity"]["n_clips"] == 32


def test_temporal_weight_weighs_only_what_changes_between_frames() -> None:
    """The frame-difference term adds nothing for a residual that is the same in every frame, and
    exactly ``w * (1 - alpha_bar) * mean(diff^2)`` otherwise; 2-D latents are refused."""
    static = torch.randn(2, 4, 1, 8, 8).expand(2, 4, 5, 8, 8)
    a = torch.tensor([0.9, 0.0])
    assert torch.allclose(t2i.sample_errors(static, a, 4.0), t2i.sample_errors(static, a, 0.0))
    moving = torch.randn(2, 4, 5, 8, 8)
    diff = (moving[:, :, 1:] - moving[:, :, :-1]).pow(2).flatten(1).mean(1)
    want = moving.pow(2).flatten(1).mean(1) + 4.0 * (1 - a) * diff
    assert torch.allclose(t2i.sample_errors(moving, a, 4.0), want)
    assert t2i.sample_errors(moving, a, 4.0)[1] > t2i.sample_errors(moving, a, 0.0)[1]
    fit = t2i.Fit(steps=1, batch=1, temporal_weight=1.0)
    with pytest.raises(ValueError, match="temporal_weight needs clips"):
        t2i.fit_denoiser(None, torch.zeros(2, 4, 8, 8), torch.zeros(2, dtype=torch.long), None, None, fit, seed=0)


def test_readings_count_what_the_judge_read_per_asked_value() -> None:
    prompts = [
        "a small red circle moving left over a plain white background",
        "a large blue square moving up over a plain white background",
        "a small green circle moving left over a plain white background",
    ]
    judged = [
        {"shape": "circle", "motion": "wave"},
        {"shape": "unknown", "motion": "up"},
        {"shape": "square", "motion": "left"},
    ]
    assert t2i.readings(judged, prompts, "shape") == {"circle": {"circle": 1, "square": 1}, "square": {"unknown": 1}}
    assert t2i.readings(judged, prompts, "motion") == {"left": {"wave": 1, "left": 1}, "up": {"up": 1}}
    with pytest.raises(ValueError):
        t2i.readings(judged[:2], prompts, "shape")


def _unet_files(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(folder / "unet" / "diffusion_pytorch_model.safetensors")


@pytest.mark.parametrize(
    ("main", "args", "message"),
    [
        (t2i.main, ["--threads", "0"], "argument --threads: must be a whole number >= 1, got '0'"),
        (t2v.main, ["--threads", "two"], "argument --threads: must be a whole number >= 1, got 'two'"),
    ],
)
def test_a_bad_thread_count_is_refused_before_training(tmp_path: Path, capsys, main, args, message) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "--quick", "--out", str(tmp_path / "out"), *args])
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_t2v_mirrors_the_t2i_architecture(tmp_path: Path, monkeypatch) -> None:
    """``T2I_CHANNELS`` / ``T2I_ATTENTION`` shape both UNets, so every 2-D tensor has a 3-D counterpart
    (the 1x1 projection convolutions of the 2-D transformers are linear layers in 3-D)."""
    monkeypatch.setattr(t2i, "T2I_CHANNELS", (16, 32, 32))
    monkeypatch.setattr(t2i, "T2I_ATTENTION", (False, True, True))
    u2, u3 = t2i.build_unet(64, 16), t2v.build_unet(64, 16)
    assert tuple(u2.config.down_block_types) == ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D")
    assert tuple(u2.config.up_block_types) == ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D")
    assert tuple(u3.config.up_block_types) == ("CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "UpBlock3D")
    d2, d3 = u2.state_dict(), u3.state_dict()
    assert all(k in d3 and d3[k].numel() == v.numel() for k, v in d2.items())
    # init_from_t2i copies all of them, the 1x1 projections reshaped into the linear ones
    u2.save_pretrained(tmp_path / "unet2d")
    assert t2v.init_from_t2i(u3, tmp_path / "unet2d") == len(d2)
    got = u3.state_dict()
    proj = [k for k, v in d2.items() if v.dim() == 4 and v.shape[2:] == (1, 1) and got[k].dim() == 2]
    assert proj and all(torch.equal(got[k], d2[k].flatten(1)) for k in proj)
    assert all(torch.equal(got[k].reshape(v.shape), v) for k, v in d2.items())


def test_recipes_pass_the_thread_count_to_the_trainers(tmp_path: Path, capsys, keep_torch_threads) -> None:
    """``recut zoo train --threads N`` / ``recipes train --threads N`` reach the trainer (recorded in
    zoo_info.json); a bad count is refused by name before anything trains."""
    from toyworld.zoo.recipes import main as recipes_main

    # every trainer that writes its own zoo_info.json (the T2V writes it through the T2I's fit_and_save)
    for name in ("t2i", "vae", "clip", "depth", "t2v_text_encoder"):
        assert recipes_main(["train", name, "--quick", "--out", str(tmp_path / name), "--threads", "2"]) == 0
        assert json.loads((tmp_path / name / "zoo_info.json").read_text())["threads"] == 2, name
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        recipes_main(["train", "vae", "--quick", "--out", str(tmp_path / "refused"), "--threads", "0"])
    assert exc.value.code == 2 and "argument --threads: must be a whole number >= 1, got '0'" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()
    with pytest.raises(ValueError, match="threads must be a whole number >= 1, got 0"):
        t2i.train(tmp_path / "bad", quick=True, log=None, threads=0)
