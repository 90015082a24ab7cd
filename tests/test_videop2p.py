"""Video-P2P building blocks: inflation, DDIM inversion, null-text, attention control."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch

from engines.common.ddim import ddim_invert
from engines.common.inflate import inflate
from engines.common.nulltext import NullTextConfig, guided_reconstruction, optimize_null_text
from engines.common.p2p import (
    AttentionController,
    BlendConfig,
    ControlConfig,
    equalizer_vector,
    p2p_sample,
    refine_alignment,
    token_count,
    word_token_indices,
)

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "models" / "tiny-random" / "sd"
TOY = REPO / "models" / "toy" / "t2i"

torch.set_num_threads(1)


@cache
def _unet(folder: Path):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_pretrained(folder / "unet").eval().requires_grad_(False)


@cache
def _tokenizer(folder: Path = TOY):
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(folder / "tokenizer")


@cache
def _toy_setup():
    """Toy components, a 3-frame toy clip, its latents, text and a 10-step inversion (shared by tests)."""
    from diffusers import AutoencoderKL, DDIMScheduler
    from transformers import CLIPTextModel

    from toyworld import scene as toy

    vae = AutoencoderKL.from_pretrained(TOY / "vae").eval()
    te = CLIPTextModel.from_pretrained(TOY / "text_encoder").eval()
    tok = _tokenizer()
    sched = DDIMScheduler.from_pretrained(TOY / "scheduler")
    scene = toy.ToyScene.model_validate(
        {"objects": [{"shape": "square", "colour": "blue", "size": "large", "motion": "right"}], "frames": 3, "seed": 1}
    )
    clip = toy.render(scene)

    def embed(text: str) -> torch.Tensor:
        ids = tok([text], padding="max_length", max_length=tok.model_max_length, return_tensors="pt").input_ids
        with torch.no_grad():
            return te(ids)[0]

    with torch.no_grad():
        x = torch.from_numpy(clip.frames).permute(0, 3, 1, 2).float() / 127.5 - 1
        lat = vae.encode(x).latent_dist.mode() * vae.config.scaling_factor
    latents = lat.permute(1, 0, 2, 3)[None]  # [1, C, F, h, w]
    t2s = inflate(copy.deepcopy(_unet(TOY)), "first")
    cond, null0 = embed(clip.caption), embed("")

    def eps(x: torch.Tensor, t: int, text: torch.Tensor) -> torch.Tensor:
        return t2s(x, t, text).sample

    traj = ddim_invert(lambda x, t: eps(x, t, cond), sched, latents, 10)
    return {
        "vae": vae,
        "sched": sched,
        "clip": clip,
        "latents": latents,
        "t2s": t2s,
        "eps": eps,
        "cond": cond,
        "null0": null0,
        "traj": traj,
        "embed": embed,
    }


def _decode(vae, z: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        x = vae.decode(z[0].permute(1, 0, 2, 3) / vae.config.scaling_factor).sample
    return ((x / 2 + 0.5).clamp(0, 1) * 255).round().permute(0, 2, 3, 1).numpy().astype(np.uint8)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


# --------------------------------------------------------------------------- inflation


@pytest.mark.parametrize("folder", [TINY, TOY], ids=["tiny-random", "toy"])
def test_inflated_model_equals_image_model_frame_by_frame(folder: Path) -> None:
    unet = _unet(folder)
    g = torch.Generator().manual_seed(0)
    f, side = 4, unet.config.sample_size
    x = torch.randn(1, 4, f, side, side, generator=g)
    text = torch.randn(1, 5, unet.config.cross_attention_dim, generator=g)
    with torch.no_grad():
        ref = torch.stack([unet(x[:, :, i], 10, encoder_hidden_states=text).sample for i in range(f)], dim=2)
        static = x[:, :, :1].expand_as(x).contiguous()
        ref_static = unet(static[:, :, 0], 10, encoder_hidden_states=text).sample
        for mode in ("self", "first", "sparse_causal"):
            t2s = inflate(copy.deepcopy(unet), mode)
            n_temporal = sum(1 for n, _ in t2s.named_parameters() if ".attn_temp." in n)
            assert n_temporal > 0
            out = t2s(x, 10, text).sample
            assert out.shape == x.shape
            # frame 0 attends to itself in every mode: the image model exactly
            torch.testing.assert_close(out[:, :, 0], ref[:, :, 0], atol=1e-5, rtol=1e-4)
            if mode == "self":
                torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
            else:  # other frames see frame 0's keys/values, so they differ unless the clip is static
                assert (out[:, :, 1:] - ref[:, :, 1:]).abs().max() > 1e-3
            out_static = t2s(static, 10, text).sample
            for i in range(f):
                torch.testing.assert_close(out_static[:, :, i], ref_static, atol=1e-5, rtol=1e-4)
            # the temporal layers are live: a non-zero output projection changes the result
            for n, p in t2s.named_parameters():
                if n.endswith("attn_temp.to_out.0.weight"):
                    p.data.normal_(0, 0.5, generator=torch.Generator().manual_seed(1))
            assert (t2s(static, 10, text).sample - out_static).abs().max() > 1e-4


def test_inflation_is_deterministic_and_keeps_parameter_names() -> None:
    unet = _unet(TINY)
    a, b = inflate(copy.deepcopy(unet)), inflate(copy.deepcopy(unet))
    sa, sb = dict(a.named_parameters()), dict(b.named_parameters())
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    base = {"unet." + n for n, _ in unet.named_parameters()}
    assert base < set(sa)


# --------------------------------------------------------------------------- inversion + null-text


def test_ddim_inversion_reconstructs_the_clip() -> None:
    s = _toy_setup()
    frames, vae, sched = s["clip"].frames, s["vae"], s["sched"]
    ceiling = _psnr(frames, _decode(vae, s["latents"]))
    assert len(s["traj"]) == 11 and s["traj"][-1].shape == s["latents"].shape
    z0 = guided_reconstruction(s["eps"], sched, s["traj"][-1], 10, s["cond"], s["null0"], 1.0)
    recon = _psnr(frames, _decode(vae, z0))
    # 10 inversion steps: ~25 dB against a VAE ceiling of ~35 dB on this clip (20 steps: within 2 dB)
    assert recon > 22.0, (recon, ceiling)
    # control: the same sampler from unrelated noise does not reconstruct the clip
    noise = torch.randn(s["latents"].shape, generator=torch.Generator().manual_seed(0))
    z_rand = guided_reconstruction(s["eps"], sched, noise, 10, s["cond"], s["null0"], 1.0)
    assert _psnr(frames, _decode(vae, z_rand)) < recon - 8.0


def test_null_text_optimisation_restores_guided_reconstruction() -> None:
    s = _toy_setup()
    frames, vae, sched, w = s["clip"].frames, s["vae"], s["sched"], 5.0
    plain = _psnr(
        frames, _decode(vae, guided_reconstruction(s["eps"], sched, s["traj"][-1], 10, s["cond"], s["null0"], w))
    )
    cfg = NullTextConfig(inner_steps=5, lr=0.1)
    shared = optimize_null_text(s["eps"], sched, s["traj"], s["cond"], s["null0"], w, cfg)
    assert shared.embeddings.shape == (10, *s["null0"].shape[1:])
    assert all(1 <= n <= 5 for n in shared.inner_steps_used)
    z = guided_reconstruction(s["eps"], sched, s["traj"][-1], 10, s["cond"], shared.embeddings, w)
    nti = _psnr(frames, _decode(vae, z))
    assert nti > plain + 5.0, (plain, nti)
    per = optimize_null_text(
        s["eps"], sched, s["traj"], s["cond"], s["null0"], w, NullTextConfig(5, 0.1, per_frame=True)
    )
    assert per.embeddings.shape == (10, 3, *s["null0"].shape[1:])
    z = guided_reconstruction(s["eps"], sched, s["traj"][-1], 10, s["cond"], per.embeddings, w)
    assert _psnr(frames, _decode(vae, z)) > plain + 5.0


def test_replace_with_identical_prompts_reproduces_the_reconstruction() -> None:
    s = _toy_setup()
    sched, prompt = s["sched"], s["clip"].caption
    null = s["null0"].repeat(10, 1, 1)
    recon = guided_reconstruction(s["eps"], sched, s["traj"][-1], 10, s["cond"], null, 5.0)
    ctl = AttentionController(ControlConfig("replace", 0.4, 0.4), _tokenizer(), prompt, prompt, 10, 3)
    out = p2p_sample(
        s["t2s"], sched, s["traj"][-1], 10, s["cond"], s["cond"], null, s["null0"], 5.0, ctl, decoupled=False
    )
    torch.testing.assert_close(out[0:1], recon, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out[1:2], recon, atol=1e-4, rtol=1e-4)
    assert s["t2s"].state.hook is None  # the hook is removed after sampling
    # a different target prompt without any control does change the target branch
    tgt = prompt.replace("blue", "red")
    free = p2p_sample(s["t2s"], sched, s["traj"][-1], 10, s["cond"], s["embed"](tgt), null, s["null0"], 5.0, None)
    torch.testing.assert_close(free[0:1], recon, atol=1e-4, rtol=1e-4)
    assert (free[1] - recon[0]).abs().mean() > 1e-2


def test_frame_attention_maps_in_row_blocks_give_the_same_edit(monkeypatch) -> None:
    """Found at full size (benchmarks/fullsize.py): at 512x512 x 4 frames the sample's frame attention
    materialised 16 x 8 heads x 4096 x 4096 maps per layer for the self-attention control (peak RSS
    16.4 GB). The maps now come in blocks of query rows; the edit is the same."""
    from engines.common import inflate as inflate_module

    s = _toy_setup()
    sched, prompt = s["sched"], s["clip"].caption
    null = s["null0"].repeat(10, 1, 1)
    tgt = s["embed"](prompt.replace("blue", "red"))

    def run() -> tuple[torch.Tensor, list[int]]:
        ctl = AttentionController(ControlConfig("replace", 0.4, 1.0), _tokenizer(), prompt, prompt, 10, 3)
        rows: list[int] = []
        call = ctl.__call__

        class Spy:  # the controller, recording how many query rows each frame-attention call gets
            def __call__(self, probs, is_cross, place, heads):
                if not is_cross:
                    rows.append(probs.shape[1])
                return call(probs, is_cross, place, heads)

            def __getattr__(self, name):
                return getattr(ctl, name)

        out = p2p_sample(s["t2s"], sched, s["traj"][-1], 10, s["cond"], tgt, null, s["null0"], 5.0, Spy())
        return out, rows

    whole, rows_whole = run()
    n = max(rows_whole)  # the query rows of the largest frame-attention layer
    monkeypatch.setattr(inflate_module, "HOOK_BLOCK_ELEMENTS", 1)  # one query row at a time
    blocks, rows_blocks = run()
    assert set(rows_blocks) == {1} and len(rows_blocks) == sum(rows_whole) and n > 1
    torch.testing.assert_close(blocks, whole, atol=1e-4, rtol=1e-4)  # float rounding of the grouping


# --------------------------------------------------------------------------- attention control units


def _probs(f: int = 2, heads: int = 2, n: int = 16, m: int = 40, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(4 * f * heads, n, m, generator=g).softmax(-1)


def _view(p: torch.Tensor, f: int = 2, heads: int = 2) -> torch.Tensor:
    return p.view(4, f, heads, p.shape[1], p.shape[2])


def test_token_helpers_and_refine_alignment() -> None:
    tok = _tokenizer()
    src = "a red circle over a plain white background"
    tgt = "a large red circle over a plain white background"
    assert token_count(tok, src) == 8 and token_count(tok, tgt) == 9
    assert word_token_indices(tok, tgt, "red") == [3]
    assert word_token_indices(tok, tgt, "a") == [1, 6]
    mapper, alphas = refine_alignment(tok, src, tgt)
    # target "a large red circle ..." -> source positions: a->1, large->new, red->2, circle->3, ...
    assert mapper[:10].tolist() == [0, 1, 2, 2, 3, 4, 5, 6, 7, 8]
    assert alphas[:10].tolist() == [1, 1, 0, 1, 1, 1, 1, 1, 1, 1]
    assert mapper[10].item() == 9 and alphas[10].item() == 1  # EOS -> EOS
    eq = equalizer_vector(tok, tgt, {"red": 3.0})
    assert eq[3].item() == 3.0 and eq.sum().item() == tok.model_max_length + 2.0


def test_punctuation_counts_as_the_text_encoder_sees_it() -> None:
    """A comma is a token of its own: counts and word positions follow the whole prompt's encoding (the
    words after a punctuation mark were one position early, so they got their neighbour's maps)."""
    tok = _tokenizer()
    for prompt in ["a red circle, over a plain white background", "(a red) circle over a plain white background!"]:
        ids = tok.encode(prompt, add_special_tokens=False)
        assert token_count(tok, prompt) == len(ids)
        white = tok.encode("white", add_special_tokens=False)
        assert word_token_indices(tok, prompt, "white") == [1 + i for i, t in enumerate(ids) if [t] == white]
        assert word_token_indices(tok, prompt, "circle") == [
            1 + i for i, t in enumerate(ids) if [t] == tok.encode("circle", add_special_tokens=False)
        ]


def test_validation_tokenizer_counts_as_the_models_tokenizer_without_torch() -> None:
    """Validation's tokenizer (``tokenizer.json`` through ``tokenizers``) gives the ids of transformers'
    CLIPTokenizer, and validating a Video-P2P spec imports neither torch nor transformers."""
    import subprocess
    import sys

    from engines.common.tokens import FileTokenizer, load_tokenizer

    fast, ref = load_tokenizer(str(TOY)), _tokenizer()
    assert isinstance(fast, FileTokenizer) and fast.model_max_length == ref.model_max_length
    for prompt in ("A big Red circle, moving left!", "don't stop-motion", "zebra xylophone unknownword", "a cat"):
        for word in prompt.split():
            assert fast.encode(word, add_special_tokens=False) == ref.encode(word, add_special_tokens=False)
        assert token_count(fast, prompt) == token_count(ref, prompt)
        assert word_token_indices(fast, prompt, "a") == word_token_indices(ref, prompt, "a")
    code = (
        "import sys; from recut.spec import load_spec; load_spec('specs/examples/videop2p-wordswap.yaml'); "
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_replace_controller_injects_within_the_step_fractions() -> None:
    tok = _tokenizer()
    src = "a red circle over a plain white background"
    tgt = "a blue circle over a plain white background"
    ctl = AttentionController(ControlConfig("replace", cross_replace=0.5, self_replace=0.25), tok, src, tgt, 4, 2)
    p = _probs()
    for step, cross_on, self_on in ((0, True, True), (1, True, False), (2, False, False)):
        ctl.begin_step(step, (4, 4))
        out_c, out_s = _view(ctl(p.clone(), True, "up", 2)), _view(ctl(p.clone(), False, "up", 2))
        v = _view(p)
        assert torch.equal(out_c[:3], v[:3]) and torch.equal(out_s[:3], v[:3])  # uncond + source untouched
        assert torch.equal(out_c[3], v[2]) == cross_on and torch.equal(out_c[3], v[3]) != cross_on
        assert torch.equal(out_s[3], v[2]) == self_on and torch.equal(out_s[3], v[3]) != self_on
    with pytest.raises(ValueError, match="same token count"):
        AttentionController(
            ControlConfig("replace"), tok, src, "a large blue circle over a plain white background", 4, 2
        )


def test_refine_and_reweight_controllers() -> None:
    tok = _tokenizer()
    src = "a red circle over a plain white background"
    tgt = "a large red circle over a plain white background"
    p = _probs()
    v = _view(p)
    ref = AttentionController(ControlConfig("refine", 1.0, 0.0), tok, src, tgt, 4, 2)
    ref.begin_step(0, (4, 4))
    out = _view(ref(p.clone(), True, "up", 2))
    assert torch.equal(out[3][..., 3], v[2][..., 2])  # target "red" (3) <- source "red" (2)
    assert torch.equal(out[3][..., 2], v[3][..., 2])  # "large" is new: keeps its own map
    rew = AttentionController(ControlConfig("reweight", 1.0, 0.0, equalizer={"red": 2.5}), tok, src, src, 4, 2)
    rew.begin_step(0, (4, 4))
    out = _view(rew(p.clone(), True, "up", 2))
    torch.testing.assert_close(out[3][..., 2], 2.5 * v[2][..., 2])
    torch.testing.assert_close(out[3][..., 3], v[2][..., 3])
    assert torch.equal(out[2], v[2])


def test_local_blend_mask_follows_the_word_per_frame_and_keeps_the_rest() -> None:
    tok = _tokenizer()
    src = "a red circle over a plain white background"
    tgt = "a blue circle over a plain white background"
    steps, f, side = 4, 2, 4
    blend = BlendConfig(("red",), ("blue",), threshold=0.3, start=0.0, max_side=1.0)
    ctl = AttentionController(ControlConfig("replace", 0.0, 0.0, blend=blend), tok, src, tgt, steps, f)
    region = torch.zeros(f, side, side, dtype=torch.bool)
    region[0, :2, :2] = True  # frame 0: top-left
    region[1, 2:, 2:] = True  # frame 1: bottom-right
    p = torch.full((4, f, 1, side * side, 40), 0.01)
    p[:, :, 0, :, 2] += region.view(f, -1).float() * 0.5  # the word's column lights up its region
    lat = torch.randn(2, 4, f, side, side, generator=torch.Generator().manual_seed(0))
    ctl.begin_step(0, (side, side))
    ctl(p.reshape(4 * f, side * side, 40).clone(), True, "mid", 1)
    out = ctl.end_step(lat.clone())
    # the max-pool dilates the region by one latent pixel, as P2P does
    dilated = torch.nn.functional.max_pool2d(region.float()[:, None], 3, 1, 1)[:, 0] > 0
    assert torch.equal(ctl.mask, dilated)
    keep = ~ctl.mask
    assert torch.equal(out[0], lat[0])
    assert torch.equal(out[1][:, keep], lat[0][:, keep])  # outside: the source latents
    torch.testing.assert_close(out[1][:, ctl.mask], lat[1][:, ctl.mask])  # inside: the edit
    # maps coarser than blend.max_side are ignored; none left is an error, not a silent no-op
    half = BlendConfig(("red",), ("blue",), max_side=0.5)
    ctl = AttentionController(ControlConfig("replace", 0.0, 0.0, blend=half), tok, src, tgt, steps, f)
    ctl.begin_step(0, (side, side))
    ctl(p.reshape(4 * f, side * side, 40).clone(), True, "mid", 1)
    with pytest.raises(ValueError, match=r"raise blend\.max_side"):
        ctl.end_step(lat.clone())
