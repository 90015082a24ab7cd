"""Toy text-to-video model: a small ModelScope-layout pipeline (TextToVideoSDPipeline).

A small :class:`diffusers.UNet3DConditionModel` is trained (:data:`SCHEDULE`: v-prediction on
SD-1.5's betas rescaled to zero terminal SNR) on 8-frame clips of frozen toy-VAE latents
``[4, 8, 16, 16]`` of toy scenes with one object moving left/right/up/down (plus a few static and
two-object clips), conditioned on the hidden states of the caption ("a red circle moving left
over a plain white background") from the T2V's own frozen text encoder (:data:`TEXT_ENCODER`,
:mod:`toyworld.zoo.motion_text`), 10% empty captions for classifier-free guidance.  Spatial
layers are initialised from the trained toy T2I UNet (``models/toy/t2i/unet``) where names and
shapes match; the temporal layers start as identity (diffusers' zero-initialised temporal
convs/attention outputs).

Saved layout::

    models/toy/t2v/model_index.json    TextToVideoSDPipeline
    models/toy/t2v/unet/               UNet3DConditionModel
    models/toy/t2v/scheduler/          DDIMScheduler config (the training schedule)
    models/toy/t2v/text_encoder        -> the encoder it was trained with: ../t2v_text_encoder
    models/toy/t2v/{vae,tokenizer}     -> ../vae, ../tokenizer

API: :func:`train(out_dir, quick=False, seed=0, ...)` -> figures;
:func:`check(model_dir, n_prompts=48, steps=30, guidance=5.0)` -> quality figures (colour+shape
on every frame's object, and motion direction of the colour mask's centroid track).

CLI: ``python -m toyworld.zoo.t2v train [--quick] [--out DIR] [--save-every N] [--resume CHECKPOINT]``
/ ``check [DIR]`` (the T2I's command line, :func:`toyworld.zoo.t2i.run_cli`).

Heavy libraries (diffusers) are imported inside the functions that use them, so that importing
this module costs only torch.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engines.common import sampling
from engines.common.finetune import prediction_target
from toyworld import scene as toy
from toyworld.judge import judge_object
from toyworld.zoo import t2i
from toyworld.zoo._cli import fraction, whole
from toyworld.zoo._util import set_threads

DEFAULT_OUT = t2i.TOY_ROOT / "t2v"
FRAMES = 8
DIRECTIONS = ("left", "right", "up", "down")
OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}
TRAIN_SEED = 1100
HELDOUT_SEED = 9100
TRAIN_CLIPS = 1500
#: 5500 steps: the LR constant after the warm-up, then falling linearly to 0 over the last
#: :data:`COOLDOWN` steps (at most the run's steps).
TRAIN_STEPS = 5500
COOLDOWN = 1000
TRAIN_BATCH = 8
BAR_COLOUR_SHAPE = 0.8
BAR_MOTION = 0.7
#: The T2V's own text encoder (toyworld.zoo.motion_text): the toy text encoder fine-tuned
#: so that the caption's motion words reach its end-of-text states.
TEXT_ENCODER = t2i.TOY_ROOT / "t2v_text_encoder"
#: Weight of the error of a clip's frame-to-frame differences (:func:`t2i.sample_errors`): it is
#: what makes the UNet follow the direction words.
TEMPORAL_WEIGHT = 16.0

#: Where the check guides (:func:`engines.common.sampling.guidance_window`): only at t >= 300 of
#: 1000; guidance at low noise rounds the corners of small squares.
GUIDANCE_INTERVAL = (0.3, 1.0)

#: Noise schedule of the toy T2V: SD-1.5's betas rescaled to zero terminal SNR, v-prediction,
#: trailing timesteps (Lin et al. 2024), so the loss weighs the clip's layout at high noise,
#: where the sampler decides which way the object moves.
SCHEDULE: dict[str, Any] = {
    **t2i.SCHEDULE,
    "rescale_betas_zero_snr": True,
    "prediction_type": "v_prediction",
    "timestep_spacing": "trailing",
}


# --------------------------------------------------------------------------- data


def t2v_scenes(
    seed: int, count: int, frames: int = FRAMES, static_frac: float = 0.1, two_object_frac: float = 0.1
) -> list[toy.ToyScene]:
    """Clips of 1 object moving left/right/up/down (``static_frac`` static), ``two_object_frac``
    with 2 objects; no pan."""
    out = []
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        u = rng.random()
        motions = ("static",) if u < static_frac else DIRECTIONS
        k = 2 if rng.random() < two_object_frac else 1
        while True:
            s = toy.sample_scene(rng, max_objects=k, frames=frames, size=64, motions=motions, pan_prob=0.0)
            if len(s.objects) == k:
                break
        out.append(s)
    return out


def training_clips(
    vae,
    seed: int = TRAIN_SEED,
    count: int = TRAIN_CLIPS,
    frames: int = FRAMES,
    cache: str | os.PathLike[str] | None = None,
) -> tuple[list[toy.ToyScene], torch.Tensor]:
    """The training scenes :func:`t2v_scenes` and their clips as ``vae`` latents ``[N,C,T,h,w]``
    (memoised in ``cache``, see :func:`t2i.cached_latents`)."""
    scenes = t2v_scenes(seed, count, frames=frames)
    n = len(scenes)
    lat = t2i.cached_latents(
        vae, f"t2v-{seed}-{count}-{frames}", lambda: t2i.render_frames(scenes).reshape(n * frames, 64, 64, 3), cache
    )
    return scenes, lat.reshape(n, frames, *lat.shape[1:]).permute(0, 2, 1, 3, 4).contiguous()


def heldout_prompts(n: int = 48, seed: int = HELDOUT_SEED) -> list[str]:
    """``n`` single-object captions with a left/right/up/down motion, balanced over directions."""
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        s = toy.sample_scene(rng, max_objects=1, frames=FRAMES, motions=(DIRECTIONS[i % 4],), pan_prob=0.0)
        out.append(toy.caption(s))
    return out


# --------------------------------------------------------------------------- model


def build_unet(cross_dim: int, sample_size: int, quick: bool = False):
    from diffusers import UNet3DConditionModel

    ch = (16, 32) if quick else t2i.T2I_CHANNELS
    down, up = t2i.block_types("3D", (True, False) if quick else t2i.T2I_ATTENTION)
    return UNet3DConditionModel(
        sample_size=sample_size,
        in_channels=4,
        out_channels=4,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=ch,
        layers_per_block=1,
        attention_head_dim=t2i.T2I_HEADS if not quick else 4,
        norm_num_groups=8,
        cross_attention_dim=cross_dim,
    )


def _squeezed(t: torch.Tensor) -> tuple[int, ...]:
    shape = list(t.shape)
    while len(shape) > 1 and shape[-1] == 1:
        shape.pop()
    return tuple(shape)


def copy_matching(unet, src: dict[str, torch.Tensor], rename: Callable[[str], str] | None = None) -> int:
    """Copy every tensor of ``src`` (a state dict) whose name (after ``rename``) is in ``unet`` and whose
    shape matches up to trailing singleton axes (a 2-D transformer's 1x1 projection convolution
    ``(out, in, 1, 1)`` lands in the 3-D transformer's linear ``(out, in)``); returns how many."""
    dst = unet.state_dict()
    hit = {}
    for k, v in src.items():
        name = rename(k) if rename is not None else k
        if name in dst and _squeezed(v) == _squeezed(dst[name]):
            hit[name] = v.reshape(dst[name].shape)
    unet.load_state_dict(hit, strict=False)
    return len(hit)


def init_from_t2i(unet3d, unet2d: str | os.PathLike[str]) -> int:
    """:func:`copy_matching` from the 2-D UNet folder ``unet2d``; returns how many tensors were copied."""
    from diffusers import UNet2DConditionModel

    return copy_matching(unet3d, UNet2DConditionModel.from_pretrained(unet2d).state_dict())


# --------------------------------------------------------------------------- loading / sampling / judging


def load_pipeline(model_dir: str | os.PathLike[str] = DEFAULT_OUT):
    return t2i.load_pipeline(model_dir, "TextToVideoSDPipeline")


def sample(
    pipe,
    prompts: Sequence[str],
    steps: int = 30,
    guidance: float = 5.0,
    seed: int = 0,
    frames: int = FRAMES,
    batch: int = 16,
    interval: tuple[float, float] | None = None,
) -> np.ndarray:
    """uint8 ``[N,T,64,64,3]`` clips, one per prompt: DDIM (eta 0) from pure noise with ``pipe``'s
    components, through recut's shared loop (:mod:`engines.common.sampling`, what ``dreamix`` and
    ``sdedit`` run), classifier-free guidance ``guidance`` inside the guidance ``interval`` (``None``:
    every step).  Each batch's noise comes from a generator seeded ``seed + i``, drawn as
    ``TextToVideoSDPipeline`` draws it, so with guidance at every step the clips are the pipeline's."""
    c = sampling.Components(
        vae=pipe.vae,
        text_encoder=pipe.text_encoder,
        tokenizer=pipe.tokenizer,
        unet=pipe.unet,
        scheduler_config=pipe.scheduler.config,
        dtype=torch.float32,
    )
    window = sampling.guidance_window(interval, c.scheduler_config)
    side = 64 // c.vae_scale
    outs = []
    with torch.no_grad():
        uncond = sampling.embed(c, "") if guidance > 1.0 else None
        for i in range(0, len(prompts), batch):
            chunk = list(prompts[i : i + batch])
            g = torch.Generator().manual_seed(seed + i)
            noise = torch.randn((len(chunk), c.unet.config.in_channels, frames, side, side), generator=g)
            cond = torch.cat([sampling.embed(c, p) for p in chunk])
            sched, timesteps = sampling.schedule(c.scheduler_config, steps, 1.0)

            def eps(x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor = cond) -> torch.Tensor:
                return sampling.guided_eps(c.unet, x, t, cond, uncond, guidance, window)

            lat = sampling.denoise(sched, timesteps, noise, eps, noise, 1.0)
            lat = lat.permute(0, 2, 1, 3, 4).reshape(-1, *lat.shape[1:2], *lat.shape[3:])
            outs.append(sampling.decode(c, lat, batch * frames).reshape(len(chunk), frames, 64, 64, 3))
    return np.concatenate(outs)


def judge_clip(clip: np.ndarray, prompt: str) -> dict[str, Any]:
    """Colour, shape (majority over frames) and motion (centroid track of the colour's largest
    component) of the first object named in ``prompt``; ``clip`` uint8 ``[T,H,W,3]``.  Uses part
    A's :func:`toyworld.judge.judge_object`."""
    want = toy.parse_caption(prompt)[0]
    r = judge_object(clip, want["colour"], want["shape"], want["motion"])
    return {
        "colour_ok": bool(r["colour"]),
        "shape_ok": bool(r["shape"]),
        "shape": r["shape_pred"],
        "motion": r["motion_pred"],
        "motion_ok": bool(r["motion"]),
    }


def check(
    model_dir: str | os.PathLike[str] = DEFAULT_OUT,
    n_prompts: int = 48,
    steps: int = 30,
    guidance: float = 5.0,
    seed: int = 0,
    record: bool = False,
    guidance_interval: tuple[float, float] = GUIDANCE_INTERVAL,
    prompt_seed: int = HELDOUT_SEED,
) -> dict[str, Any]:
    """Sample one clip per held-out prompt (:func:`sample`, guidance inside ``guidance_interval``);
    colour+shape and motion-direction accuracy, plus the model's :func:`conditioning_sensitivity`
    (diagnostic only: the bars are judged on samples) (``record``: also store the figures in
    ``zoo_info.json``).  ``prompt_seed``: draw the prompts from another seed (validation prompts
    for choosing settings; only the held-out check can be recorded)."""
    if record and prompt_seed != HELDOUT_SEED:
        raise ValueError(
            f"--record stores the held-out check (prompt seed {HELDOUT_SEED}), got --prompt-seed {prompt_seed}"
        )
    set_threads()
    prompts = heldout_prompts(n_prompts, seed=prompt_seed)
    sample_fn = functools.partial(sample, interval=tuple(guidance_interval))
    res, figs = t2i.judged_samples(load_pipeline(model_dir), prompts, sample_fn, judge_clip, steps, guidance, seed)
    figs["guidance_interval"] = list(guidance_interval)
    figs["prompt_seed"] = prompt_seed
    figs["frames"] = FRAMES
    figs["motion_acc"] = float(np.mean([r["motion_ok"] for r in res]))
    figs["shape_predicted"] = t2i.readings(res, prompts, "shape")
    figs["motion_predicted"] = t2i.readings(res, prompts, "motion")
    figs["passed"] = figs["colour_shape_acc"] >= BAR_COLOUR_SHAPE and figs["motion_acc"] >= BAR_MOTION
    figs["conditioning_sensitivity"] = conditioning_sensitivity(model_dir)
    if record:
        t2i.record_check(model_dir, figs)
    return figs


PROBE_SEED = 77000
PROBE_TIMESTEPS = (600, 900, 999)


def swap_word(caption: str, attribute: str) -> str:
    """``caption`` with its first object's direction (``attribute="motion"``: left<->right,
    up<->down) or colour (``"colour"``: red->blue, anything else->red) replaced."""
    obj = toy.parse_caption(caption)[0]
    if attribute == "motion":
        return caption.replace("moving " + obj["motion"], "moving " + OPPOSITE[obj["motion"]], 1)
    if attribute == "colour":
        return caption.replace(obj["colour"], "blue" if obj["colour"] == "red" else "red", 1)
    raise ValueError(f"attribute must be 'motion' or 'colour', got {attribute!r}")


def probe_scenes(n: int, frames: int = FRAMES) -> list[toy.ToyScene]:
    """The held-out single-object left/right/up/down scenes the probes use (seed :data:`PROBE_SEED`)."""
    return [
        toy.sample_scene(
            np.random.default_rng([PROBE_SEED, i]), max_objects=1, frames=frames, motions=DIRECTIONS, pan_prob=0.0
        )
        for i in range(n)
    ]


@torch.no_grad()
def conditioning_sensitivity(
    model_dir: str | os.PathLike[str] = DEFAULT_OUT,
    n_clips: int = 32,
    timesteps: Sequence[int] = PROBE_TIMESTEPS,
    frames: int = FRAMES,
) -> dict[str, Any]:
    """How much the UNet uses each caption attribute: on ``n_clips`` held-out single-object moving
    clips, noised to each of ``timesteps`` with fixed noise, the relative increase of the prediction
    error (epsilon or v, as the folder's scheduler says) when the caption's direction (``motion``)
    or colour is swapped for a wrong one.  Also the fraction of clips where the true caption wins.
    A model that ignores the direction words scores ~0 for ``motion`` (and cannot follow motion
    prompts) however good its samples look; ``colour`` is the reference of an attribute the model
    is known to use.  Seconds, not minutes: a cheap check of a training run long before sampling can tell."""
    from diffusers import DDPMScheduler, UNet3DConditionModel

    tok, te, vae = t2i.load_components(model_dir)  # the pipeline folder's own tokenizer/text_encoder/vae
    unet = UNet3DConditionModel.from_pretrained(Path(model_dir) / "unet", local_files_only=True).eval()
    scenes = probe_scenes(n_clips, frames)
    n = len(scenes)
    lat = t2i.encode_images(vae, t2i.render_frames(scenes).reshape(n * frames, 64, 64, 3))
    lat = lat.reshape(n, frames, *lat.shape[1:]).permute(0, 2, 1, 3, 4)
    caps = [toy.caption(s) for s in scenes]
    emb = {"true": t2i.encode_text(tok, te, caps)}
    for attr in ("motion", "colour"):
        emb[attr] = t2i.encode_text(tok, te, [swap_word(c, attr) for c in caps])
    sched = DDPMScheduler.from_config(DDPMScheduler.load_config(Path(model_dir) / "scheduler"))  # the folder's schedule
    out: dict[str, Any] = {"n_clips": n, "timesteps": [int(tt) for tt in timesteps]}
    for tt in out["timesteps"]:
        noise = torch.randn(lat.shape, generator=torch.Generator().manual_seed(tt))
        t = torch.full((n,), tt)
        xt = sched.add_noise(lat, noise, t)
        target = prediction_target(sched, lat, noise, t)
        err = {}
        for k, e in emb.items():
            err[k] = (unet(xt, t, encoder_hidden_states=e).sample - target).pow(2).flatten(1).mean(1)
        for attr in ("motion", "colour"):
            rel = (err[attr] - err["true"]) / err["true"]
            out[f"{attr}_rel_error_t{tt}"] = round(float(rel.mean()), 5)
            out[f"{attr}_true_wins_t{tt}"] = round(float((rel > 0).float().mean()), 3)
    return out


# --------------------------------------------------------------------------- training


def train(
    out_dir: str | os.PathLike[str] = DEFAULT_OUT,
    quick: bool = False,
    seed: int = 0,
    *,
    components: str | os.PathLike[str] | None = None,
    text_encoder: str | os.PathLike[str] = TEXT_ENCODER,
    init_from: str | os.PathLike[str] = t2i.DEFAULT_OUT / "unet",
    steps: int | None = None,
    cache: str | os.PathLike[str] | None = None,
    save_every: int = 0,
    resume: str | os.PathLike[str] | None = None,
    threads: int = 1,
    log=print,
) -> dict[str, Any]:
    """Train the toy T2V UNet and save the pipeline folder; returns figures.

    ``text_encoder``: the T2V's own text encoder folder, which the pipeline folder links;
    ``init_from``: the 2-D UNet folder whose weights the spatial layers start from (the toy T2I's);
    the rest as in :func:`t2i.train`.  The LR cools down over the last :data:`COOLDOWN` steps (at
    most the run's steps), so a run with other ``steps`` keeps the recipe's shape."""
    run = t2i.Run(out_dir, seed, quick, save_every, resume, log)
    comp, tok, vae = t2i.setup_training(components, seed, text_encoder, threads)
    n_clips = 8 if quick else TRAIN_CLIPS
    frames = 4 if quick else FRAMES
    steps = steps if steps is not None else (2 if quick else TRAIN_STEPS)
    fit = t2i.Fit(
        steps=steps,
        batch=2 if quick else TRAIN_BATCH,
        cooldown=min(COOLDOWN, steps),
        temporal_weight=TEMPORAL_WEIGHT,
        noise_schedule=SCHEDULE,
        log_every=1 if quick else 25,
    )
    scenes, latents = training_clips(vae, TRAIN_SEED + seed, n_clips, frames, cache)
    prep = time.perf_counter() - run.started
    if log:
        log(f"data: {n_clips} clips, latents {tuple(latents.shape)} std {latents.std():.3f}, prep {prep:.0f}s")
    unet = build_unet(t2i.text_hidden_size(comp), latents.shape[-1], quick=quick)
    n_init = init_from_t2i(unet, init_from)
    if log:
        log(f"init: {n_init} tensors from {init_from}")
    extra = {
        "n_clips": n_clips,
        "frames": frames,
        "init_tensors": n_init,
        "init_from": t2i.repo_rel(Path(init_from)),
        "prep_seconds": round(prep, 1),
    }
    caps = [toy.caption(s) for s in scenes]
    return t2i.fit_and_save(unet, latents, caps, tok, comp, "TextToVideoSDPipeline", fit, run, extra)


def _train_args(a) -> None:
    a.add_argument("--text-encoder", default=str(TEXT_ENCODER), help="the T2V's text encoder folder")
    a.add_argument(
        "--init-from", default=str(t2i.DEFAULT_OUT / "unet"), help="the 2-D UNet folder the spatial layers start from"
    )


def _check_args(b) -> None:
    b.add_argument(
        "--guidance-interval",
        type=fraction,
        nargs=2,
        metavar=("LOW", "HIGH"),
        default=GUIDANCE_INTERVAL,
        help="guide only at timesteps t with LOW <= t / 1000 <= HIGH (default %(default)s; 0 1: every step)",
    )
    b.add_argument(
        "--prompt-seed",
        type=whole(0),
        default=HELDOUT_SEED,
        help=f"seed of the prompts (default {HELDOUT_SEED}, the held-out set; others: validation prompts)",
    )


def main(argv: Sequence[str] | None = None) -> None:
    t2i.run_cli(argv, "python -m toyworld.zoo.t2v", DEFAULT_OUT, train, check, _train_args, _check_args)


if __name__ == "__main__":
    main()
