"""Which training objective lets a diffusers UNet3DConditionModel learn *which way* a caption
says an object moves?  An isolated synthetic task, no VAE, no text encoder.

Data: 16x16 "latent" clips of 8 frames with one Gaussian blob (channel 0 up, channel 1 down)
travelling 4-9 px left/right/up/down, starting on the side opposite to its direction (as
`toyworld.scene` places linear motions), at a random position across the motion.  The condition is
one of four fixed random token sequences (one per direction; a fifth is the empty caption,
dropped in 10 % for classifier-free guidance).

The UNet is the toy T2V's architecture at half width (channels 16, 32).  It trains for
``--steps`` at batch 16, AdamW 1e-3, under one of two objectives on SD-1.5's betas:

* ``eps``: epsilon prediction, SD-1.5 schedule (what the toy T2V used before);
* ``v-zsnr``: v-prediction, betas rescaled to zero terminal SNR, trailing DDIM timesteps
  (Lin et al. 2024; what `toyworld.zoo.t2v.SCHEDULE` uses now).

Both keep diffusers' default ``clip_sample=True`` (the sampler clips its x0 estimate to [-1, 1];
the blob's channel 0 peaks at 1.5), unlike the toy pipelines, which ship ``clip_sample=False``.
The recorded rows were made this way, so it stays, and it is the same for every row.

Every 500 steps it samples 16 clips (DDIM 20 steps, guidance 3, 4 per direction, fixed noise)
and prints how many move the asked way: the blob's centroid displacement over the clip must
point in the asked direction by more than 1 px and make up at least 0.7 of the largest
displacement component.  A clip that does not move fails.

    python benchmarks/t2v_objective.py --objective eps --steps 1500
    python benchmarks/t2v_objective.py --objective v-zsnr --steps 1000

``--frame-ramp`` checks the other suspect, that the UNet cannot tell its frames apart (its
temporal attention has no positional embedding): from i.i.d. noise at t = 999 it regresses a
per-frame ramp -1..1 in channel 0 and prints the per-frame means every 50 steps.

    python benchmarks/t2v_objective.py --frame-ramp --steps 300

``--condition captions`` replaces the random tokens by the toy text encoder's hidden states of
real captions that differ only in the direction word (``--text-lr`` trains the encoder too;
``--amplify K`` scales the four captions' differences from their mean, a diagnostic; and
``--cross-attn-everywhere`` gives both UNet levels cross-attention).

    python benchmarks/t2v_objective.py --condition captions
    python benchmarks/t2v_objective.py --condition captions --text-lr 3e-4
    python benchmarks/t2v_objective.py --condition captions --amplify 4
    python benchmarks/t2v_objective.py --condition captions --cross-attn-everywhere

``--condition varied`` conditions each clip on one of 256 real single-object captions of its
direction (random colour, shape, size and background, as the real T2V data; the blobs do not
depend on them), so the direction must be read out of captions that differ in much else:

    python benchmarks/t2v_objective.py --condition varied --text-encoder models/toy/t2v_text_encoder

``--text-encoder DIR`` encodes the captions with another ``CLIPTextModel`` folder, e.g. the T2V's
own encoder (`toyworld.zoo.motion_text`), in which the direction word reaches the
end-of-text tokens:

    python benchmarks/t2v_objective.py --condition captions --text-encoder models/toy/t2v_text_encoder

``--data toy`` keeps this loop (UNet at half width from scratch, batch 16, AdamW 1e-3, no EMA) but
trains on the real T2V recipe's data: its 1500 toy clips as toy-VAE latents (memoised with
``--cache``, the same files `t2v train --cache` writes) and their own captions.  It samples the 16
held-out prompts of `t2v check`, decodes them with the toy VAE and judges them with the same judge.
It tells the data (real clips and captions) apart from the rest of the recipe (T2I init, width,
batch, LR, EMA):

    python benchmarks/t2v_objective.py --data toy --condition varied \\
        --text-encoder models/toy/t2v_text_encoder --cache /tmp/zoo/cache

``--plain-single`` keeps only its clips of one moving object over a plain background (and asks the
held-out prompts over plain backgrounds): the easy end of the real data, between it and the blobs.

~1.4 s/step on one core (23 min per 1000 steps).  Results: benchmarks/ZOO.md (the t2v section,
"What the T2V needed to follow direction words").
"""

from __future__ import annotations

import argparse
import time
from typing import Any, NamedTuple

import numpy as np
import torch

H, F, B = 16, 8, 16
DIRS = torch.tensor([[-1, 0], [1, 0], [0, -1], [0, 1]], dtype=torch.float32)  # left right up down, (x, y)


def make_clips(direction: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """``[n,4,F,H,H]`` blob clips moving the given directions (indices into :data:`DIRS`)."""
    n = len(direction)
    travel = 4 + 5 * torch.rand(n, generator=g)
    across = 3 + 10 * torch.rand(n, generator=g)
    yy, xx = torch.meshgrid(torch.arange(H).float(), torch.arange(H).float(), indexing="ij")
    out = torch.zeros(n, 4, F, H, H)
    for i in range(n):
        dx, dy = DIRS[direction[i]]
        for f in range(F):
            s = travel[i] * f / (F - 1)
            if dx != 0:
                cx, cy = ((2.5 + s) if dx > 0 else (12.5 - s)), across[i]
            else:
                cx, cy = across[i], ((2.5 + s) if dy > 0 else (12.5 - s))
            blob = torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 4.0)
            out[i, 0, f] = 2 * blob - 0.5
            out[i, 1, f] = -blob
    return out


def schedulers(objective: str):
    from diffusers import DDIMScheduler, DDPMScheduler

    kw = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)
    if objective == "v-zsnr":
        kw.update(rescale_betas_zero_snr=True, prediction_type="v_prediction", timestep_spacing="trailing")
    elif objective != "eps":
        raise SystemExit(f"--objective must be 'eps' or 'v-zsnr', got {objective!r}")
    train = DDPMScheduler(**kw)
    return train, DDIMScheduler.from_config(train.config)


@torch.no_grad()
def sample_clips(unet, cond: torch.Tensor, null: torch.Tensor, sampler, steps: int, guidance: float) -> torch.Tensor:
    """DDIM with classifier-free guidance from fixed noise: one ``[4,F,H,H]`` clip per condition."""
    n = len(cond)
    unet.eval()
    sampler.set_timesteps(steps)
    x = torch.randn(n, 4, F, H, H, generator=torch.Generator().manual_seed(5))
    for t in sampler.timesteps:
        tb = torch.full((n,), int(t))
        p_c = unet(x, tb, encoder_hidden_states=cond).sample
        p_u = unet(x, tb, encoder_hidden_states=null.expand(n, -1, -1)).sample
        x = sampler.step(p_u + guidance * (p_c - p_u), t, x).prev_sample
    unet.train()
    return x


def direction_accuracy(
    unet, emb: torch.Tensor, sampler, steps: int = 20, guidance: float = 3.0, cond: torch.Tensor | None = None
) -> tuple[int, list]:
    """How many of 16 sampled clips (4 per direction) move the asked way; and the displacements.
    ``emb``: the four directions' conditions and the empty one; ``cond``: the 16 clips' own
    conditions instead of ``emb[direction]`` (clip ``i`` asks for direction ``i % 4``)."""
    yy, xx = torch.meshgrid(torch.arange(H).float(), torch.arange(H).float(), indexing="ij")
    asked = torch.arange(4).repeat(4)
    cond = emb[asked] if cond is None else cond
    x = sample_clips(unet, cond, emb[4], sampler, steps, guidance)
    w = (x[:, 0] + 0.5).clamp(min=0)
    cx = (w * xx).sum((-1, -2)) / w.sum((-1, -2))
    cy = (w * yy).sum((-1, -2)) / w.sum((-1, -2))
    move = torch.stack([cx[:, -1] - cx[:, 0], cy[:, -1] - cy[:, 0]], 1)
    along = (move * DIRS[asked]).sum(1)
    ok = (along > 1.0) & (along >= 0.7 * move.abs().max(1).values)
    return int(ok.sum()), [tuple(round(v, 1) for v in m.tolist()) for m in move]


def frame_ramp(unet, steps: int) -> None:
    """Regress channel 0 of the output onto a per-frame ramp from pure-noise input."""
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-3)
    ramp = torch.linspace(-1, 1, F).view(1, 1, F, 1, 1)
    c = torch.zeros(8, 4, 32)
    t0 = time.time()
    for step in range(1, steps + 1):
        out = unet(torch.randn(8, 4, F, H, H), torch.full((8,), 999), encoder_hidden_states=c).sample
        loss = (out[:, :1] - ramp).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0:
            per_frame = [round(v, 2) for v in out[:, 0].mean((0, 2, 3)).tolist()]
            print(f"step {step} loss {loss.item():.4f} per-frame {per_frame} {time.time() - t0:.0f}s", flush=True)


def tokenizer_and_encoder(text_encoder: str | None):
    """The toy tokenizer and the toy text encoder, or the ``CLIPTextModel`` folder ``text_encoder``
    (frozen, eval mode)."""
    from transformers import CLIPTextModel

    from toyworld.zoo import t2i

    tok, te, _ = t2i.load_components()
    if text_encoder is not None:
        te = CLIPTextModel.from_pretrained(text_encoder).eval().requires_grad_(False)
    return tok, te


def caption_encoder(amplify: float = 1.0, train_text: bool = False, text_encoder: str | None = None):
    """A callable returning ``[5,40,64]``: the toy text encoder's (or the ``CLIPTextModel`` folder
    ``text_encoder``'s) hidden states of the four direction captions and of the empty caption
    (differences between the four scaled by ``amplify``)."""
    tok, te = tokenizer_and_encoder(text_encoder)
    caps = [f"a red circle moving {d} over a plain white background" for d in ("left", "right", "up", "down")]
    ids = tok([*caps, ""], padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt")
    te.requires_grad_(train_text)
    te.train(train_text)

    def encode() -> torch.Tensor:
        with torch.set_grad_enabled(train_text):
            h = te(ids.input_ids)[0]
        m = h[:4].mean(0, keepdim=True)
        return torch.cat([m + amplify * (h[:4] - m), h[4:]]) if amplify != 1.0 else h

    encode.text_encoder = te
    return encode


class ToySet(NamedTuple):
    clips: torch.Tensor  # [N,4,F,H,H] toy VAE latents
    cond: torch.Tensor  # [N,L,D] their captions' hidden states
    null: torch.Tensor  # [L,D] the empty caption's
    prompts: list[str]  # 16 held-out prompts, 4 per direction
    prompt_cond: torch.Tensor  # their hidden states
    vae: Any


def toy_data(text_encoder: str | None, cache: str | None, plain_single: bool = False) -> ToySet:
    """The real toy T2V recipe's training clips (:func:`toyworld.zoo.t2v.t2v_scenes`, the
    same seed and count, encoded by the toy VAE and memoised under the same key), their captions'
    hidden states, the empty caption's, and the judge's inputs: 16 held-out prompts (4 per
    direction), their hidden states and the VAE."""
    from toyworld import scene as toy
    from toyworld.zoo import t2i, t2v

    tok, te = tokenizer_and_encoder(text_encoder)
    _, _, vae = t2i.load_components()
    scenes, clips = t2v.training_clips(vae, frames=F, cache=cache)
    n = len(scenes)
    caps = [toy.caption(s) for s in scenes]
    prompts = t2v.heldout_prompts(16)
    if plain_single:  # the easy part of the data: one moving object over a plain background
        keep = [i for i, s in enumerate(scenes) if len(s.objects) == 1 and s.background.kind == "plain"]
        keep = [i for i in keep if scenes[i].objects[0].motion != "static"]
        clips, caps, n = clips[keep], [caps[i] for i in keep], len(keep)
        prompts = [p.replace(" striped ", " plain ").replace(" gradient ", " plain ") for p in prompts]
    h = t2i.encode_text(tok, te, [*caps, *prompts, ""])
    return ToySet(clips, h[:n], h[-1], prompts, h[n:-1], vae)


def toy_accuracy(unet, toy_set: ToySet, sampler, steps: int = 20, guidance: float = 5.0) -> tuple[int, int, dict]:
    """Sample the 16 held-out prompts, decode with the toy VAE and judge them as ``t2v check``
    does (:func:`toyworld.zoo.t2v.judge_clip`): (motion right, colour right, what the judge
    read per asked direction)."""
    from toyworld.zoo import data as zoo_data
    from toyworld.zoo import t2i, t2v
    from toyworld.zoo import vae as zoo_vae

    prompts = toy_set.prompts
    x = sample_clips(unet, toy_set.prompt_cond, toy_set.null, sampler, steps, guidance)
    with torch.no_grad():
        frames = zoo_data.to_uint8(zoo_vae.decode(toy_set.vae, x.permute(0, 2, 1, 3, 4).reshape(-1, 4, H, H)))
    clips = frames.reshape(len(prompts), F, *frames.shape[1:])
    res = [t2v.judge_clip(c, p) for c, p in zip(clips, prompts, strict=True)]
    return sum(r["motion_ok"] for r in res), sum(r["colour_ok"] for r in res), t2i.readings(res, prompts, "motion")


def varied_captions(text_encoder: str | None, per_direction: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """``[4, per_direction, 40, 64]`` hidden states of single-object toy captions of each direction
    (random colour, shape, size and background, as the real T2V data), and the empty caption's."""
    from toyworld import scene as toy
    from toyworld.zoo import t2i
    from toyworld.zoo.t2v import DIRECTIONS

    tok, te = tokenizer_and_encoder(text_encoder)
    caps = [
        toy.caption(
            toy.sample_scene(np.random.default_rng([4242, k, i]), max_objects=1, frames=F, motions=(d,), pan_prob=0.0)
        )
        for k, d in enumerate(DIRECTIONS)
        for i in range(per_direction)
    ]
    h = t2i.encode_text(tok, te, [*caps, ""])
    return h[:-1].reshape(4, per_direction, *h.shape[1:]), h[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--objective", default="v-zsnr", help="eps | v-zsnr")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--frame-ramp", action="store_true", help="only check that the UNet can tell frames apart")
    ap.add_argument(
        "--condition",
        default="tokens",
        choices=("tokens", "captions", "varied"),
        help="tokens: 4 random tokens per direction; captions: the toy text encoder's hidden states of "
        "'a red circle moving <dir> over a plain white background' (and of '' for the empty caption); "
        "varied: 256 captions per direction with random colour, shape, size and background",
    )
    ap.add_argument("--text-lr", type=float, default=0.0, help="captions: also train the text encoder at this LR")
    ap.add_argument("--amplify", type=float, default=1.0, help="captions: scale the 4 captions' differences")
    ap.add_argument("--text-encoder", help="captions/varied: a CLIPTextModel folder instead of models/toy/text_encoder")
    ap.add_argument("--cross-attn-everywhere", action="store_true", help="cross-attention at both UNet levels")
    ap.add_argument(
        "--data",
        choices=("blobs", "toy"),
        default="blobs",
        help="blobs: the synthetic clips; toy: the real T2V recipe's clips and captions (toy VAE latents), "
        "judged on 16 held-out prompts as `t2v check` does",
    )
    ap.add_argument("--cache", help="--data toy: folder memoising the clips' latents (as `t2v train --cache`)")
    ap.add_argument(
        "--plain-single",
        action="store_true",
        help="--data toy: only the clips of one moving object over a plain background (and plain held-out prompts)",
    )
    a = ap.parse_args()
    if a.condition != "captions" and (a.text_lr > 0 or a.amplify != 1.0):
        ap.error("--text-lr and --amplify apply to --condition captions only")
    if a.data == "toy" and (a.condition != "varied" or a.frame_ramp):
        ap.error("--data toy takes its captions from the clips: use it with --condition varied")
    if a.plain_single and a.data != "toy":
        ap.error("--plain-single applies to --data toy only")
    from diffusers import UNet3DConditionModel

    torch.set_num_threads(1)
    torch.manual_seed(0)
    unet = UNet3DConditionModel(
        sample_size=H,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "CrossAttnDownBlock3D" if a.cross_attn_everywhere else "DownBlock3D"),
        up_block_types=("CrossAttnUpBlock3D" if a.cross_attn_everywhere else "UpBlock3D", "CrossAttnUpBlock3D"),
        block_out_channels=(16, 32),
        layers_per_block=1,
        attention_head_dim=4,
        norm_num_groups=8,
        cross_attention_dim=32 if a.condition == "tokens" else 64,
    )
    if a.frame_ramp:
        return frame_ramp(unet, a.steps)
    groups = [{"params": list(unet.parameters()), "lr": 1e-3}]
    bank = None
    if a.condition == "tokens":
        emb = torch.randn(5, 4, 32) * 0.5  # 4 directions + the empty caption; 4 tokens each
        encode = None
    elif a.data == "toy":
        toy_set = toy_data(a.text_encoder, a.cache, a.plain_single)
        emb = toy_set.null[None]  # only the empty caption is used
    elif a.condition == "varied":
        bank, null = varied_captions(a.text_encoder)
        emb = torch.cat([bank[:, 0], null[None]])  # (only its empty caption is used)
        eval_cond = torch.stack([bank[i % 4, 1 + i // 4] for i in range(16)])
    else:
        encode = caption_encoder(a.amplify, train_text=a.text_lr > 0, text_encoder=a.text_encoder)
        emb = encode().detach()
        if a.text_lr > 0:
            groups.append({"params": list(encode.text_encoder.parameters()), "lr": a.text_lr})
    params = [q for gr in groups for q in gr["params"]]
    train, sampler = schedulers(a.objective)
    acp = train.alphas_cumprod
    opt = torch.optim.AdamW(groups, weight_decay=0.01)
    g = torch.Generator().manual_seed(1)
    t0, losses = time.time(), []
    for step in range(1, a.steps + 1):
        if a.text_lr > 0:
            emb = encode()
        if a.data == "toy":
            idx = torch.randint(0, len(toy_set.clips), (B,), generator=g)
            x0, c = toy_set.clips[idx], toy_set.cond[idx].clone()
            c[torch.rand(B, generator=g) < 0.1] = toy_set.null
        else:
            d = torch.randint(0, 4, (B,), generator=g)
            x0 = make_clips(d, g)
            c = emb[d].clone() if bank is None else bank[d, torch.randint(0, bank.shape[1], (B,), generator=g)]
            c[torch.rand(B, generator=g) < 0.1] = emb[4]
        t = torch.randint(0, 1000, (B,), generator=g)
        noise = torch.randn(x0.shape, generator=g)
        al = acp[t].view(-1, 1, 1, 1, 1)
        xt = al.sqrt() * x0 + (1 - al).sqrt() * noise
        target = noise if a.objective == "eps" else al.sqrt() * noise - (1 - al).sqrt() * x0
        loss = (unet(xt, t, encoder_hidden_states=c).sample - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 100 == 0:
            print(f"step {step} loss {np.mean(losses[-100:]):.4f} {time.time() - t0:.0f}s", flush=True)
        if (step % a.eval_every == 0 or step == a.steps) and a.data == "toy":
            ok, colour, read = toy_accuracy(unet, toy_set, sampler)
            print(
                f"{a.objective} step {step}: motion followed in {ok}/16, colour in {colour}/16; read {read}", flush=True
            )
        elif step % a.eval_every == 0 or step == a.steps:
            ok, moves = direction_accuracy(unet, emb.detach(), sampler, cond=None if bank is None else eval_cond)
            print(f"{a.objective} step {step}: direction followed in {ok}/16; moves {moves[:4]}", flush=True)


if __name__ == "__main__":
    main()
