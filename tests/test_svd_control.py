"""The pieces of ReVideo's model: the SVD UNet as two halves with ControlNet residuals
(engines.common.svd.unet_forward), the control module (engines.revideo.control.ControlModule) and the
temporal K/V the deblocking stage trains (temporal_kv_names)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from engines.common.svd import encoder_pass, unet_forward
from engines.revideo.control import FUSIONS, ControlModule, temporal_kv_names
from recut.models import REPO_ROOT

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = REPO_ROOT / "models" / "tiny-random" / "revideo"
STRIDES, CHANNELS = (2, 2, 1), (8, 16, 16)  # the tiny VAE downsamples by 4
B, T, H, W = 2, 4, 32, 32  # pixels; latents are H / 4


@pytest.fixture(scope="module")
def unet() -> Any:
    from diffusers import UNetSpatioTemporalConditionModel

    return UNetSpatioTemporalConditionModel.from_pretrained(TINY / "unet").eval().requires_grad_(False)


def _inputs(unet: Any, seed: int = 0) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    c = int(unet.config.in_channels)
    return {
        "x": torch.randn(B, T, c, H // 4, W // 4, generator=g),
        "t": torch.tensor(0.7),
        "emb": torch.randn(B, 1, int(unet.config.cross_attention_dim), generator=g),
        "ids": torch.tensor([[6.0, 127.0, 0.02]] * B),
        "content": torch.rand(B, T, 3, H, W, generator=g) * 2 - 1,
        "motion": torch.randn(B, T, 2, H, W, generator=g),
        "mask": (torch.rand(B, T, 1, H, W, generator=g) > 0.5).float(),
    }


def _control(unet: Any, **kw: Any) -> ControlModule:
    return ControlModule.from_unet(unet, encoder_strides=STRIDES, encoder_channels=CHANNELS, **kw).eval()


def _residuals(module: ControlModule, a: dict[str, Any], scale: float = 1.0) -> Any:
    return module(a["x"], a["t"], a["emb"], a["ids"], a["content"], a["motion"], a["mask"], scale)


# --------------------------------------------------------------------------- the UNet in two halves


@torch.no_grad()
def test_unet_forward_is_the_unet_and_takes_residuals(unet: Any) -> None:
    a = _inputs(unet)
    plain = unet(a["x"], a["t"], encoder_hidden_states=a["emb"], added_time_ids=a["ids"]).sample
    ours = unet_forward(unet, a["x"], a["t"], a["emb"], a["ids"])
    assert ours.shape == plain.shape == (B, T, 4, H // 4, W // 4)
    assert torch.equal(ours, plain)
    # a python timestep too (diffusers makes it float64, the halves float32)
    assert torch.equal(
        unet_forward(unet, a["x"], 3, a["emb"], a["ids"]),
        unet(a["x"], 3, encoder_hidden_states=a["emb"], added_time_ids=a["ids"]).sample,
    )

    skips = encoder_pass(unet, a["x"], a["t"], a["emb"], a["ids"]).skips
    g = torch.Generator().manual_seed(1)
    down = tuple(torch.randn(s.shape, generator=g) for s in skips)
    e = encoder_pass(unet, a["x"], a["t"], a["emb"], a["ids"])
    mid = torch.randn(e.hidden.shape, generator=g)
    zeros = tuple(torch.zeros_like(s) for s in skips)
    assert torch.equal(unet_forward(unet, a["x"], a["t"], a["emb"], a["ids"], zeros, torch.zeros_like(mid)), plain)
    with_down = unet_forward(unet, a["x"], a["t"], a["emb"], a["ids"], down)
    with_mid = unet_forward(unet, a["x"], a["t"], a["emb"], a["ids"], None, mid)
    assert not torch.allclose(with_down, plain) and not torch.allclose(with_mid, plain)
    assert not torch.allclose(with_down, with_mid)
    with pytest.raises(ValueError):  # one residual per skip feature, no fewer
        unet_forward(unet, a["x"], a["t"], a["emb"], a["ids"], down[:-1])


# --------------------------------------------------------------------------- the control module


def test_the_control_encoder_starts_as_the_unets(unet: Any) -> None:
    module = _control(unet)
    base = unet.state_dict()
    own = module.state_dict()
    parts = ("conv_in.", "down_blocks.", "mid_block.", "time_embedding.", "add_embedding.")
    names = [n for n in base if n.startswith(parts)]
    assert any(n.startswith("down_blocks.") for n in names) and any(n.startswith("mid_block.") for n in names)
    for n in names:
        assert n in own, n
        assert torch.equal(own[n], base[n]), n
    # and a copy, not the same tensors
    p = dict(module.named_parameters())["conv_in.weight"]
    assert p.data_ptr() != dict(unet.named_parameters())["conv_in.weight"].data_ptr()
    # the decoder half is not part of it
    assert not any(n.startswith(("up_blocks.", "conv_out.", "conv_norm_out.")) for n in own)


@torch.no_grad()
def test_a_fresh_control_module_leaves_the_unet_as_it_is(unet: Any) -> None:
    a = _inputs(unet)
    module = _control(unet)
    down, mid = _residuals(module, a)
    assert all(not r.any() for r in down) and not mid.any()
    plain = unet(a["x"], a["t"], encoder_hidden_states=a["emb"], added_time_ids=a["ids"]).sample
    assert torch.equal(unet_forward(unet, a["x"], a["t"], a["emb"], a["ids"], down, mid), plain)


def _perturb(module: ControlModule, seed: int = 0) -> None:
    """Move the zero-initialised convs (and SAFM's out conv) away from zero."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        convs = [*module.zero_convs, module.mid_zero_conv, module.content_encoder.out, module.motion_encoder.out]
        if module.safm is not None:
            convs.append(module.safm.out)
        for conv in convs:
            for p in conv.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


@pytest.mark.parametrize("fusion", FUSIONS)
@torch.no_grad()
def test_every_fusion_gives_a_residual_per_skip_feature(unet: Any, fusion: str) -> None:
    a = _inputs(unet)
    module = _control(unet, fusion=fusion)
    assert module.config.fusion == fusion and (module.safm is None) == (fusion == "sum")
    _perturb(module)
    down, mid = _residuals(module, a)
    e = encoder_pass(unet, a["x"], a["t"], a["emb"], a["ids"])
    assert len(down) == len(e.skips) == len(module.zero_convs)
    assert [r.shape for r in down] == [s.shape for s in e.skips]
    assert mid.shape == e.hidden.shape
    assert all(r.any() for r in down) and mid.any()
    out = unet_forward(unet, a["x"], a["t"], a["emb"], a["ids"], down, mid)
    plain = unet(a["x"], a["t"], encoder_hidden_states=a["emb"], added_time_ids=a["ids"]).sample
    assert out.shape == plain.shape and torch.isfinite(out).all() and not torch.allclose(out, plain)
    # the scale multiplies every residual
    down2, mid2 = _residuals(module, a, scale=2.0)
    for r, r2 in zip(down, down2, strict=True):
        torch.testing.assert_close(r2, 2 * r)
    torch.testing.assert_close(mid2, 2 * mid)
    zero_down, zero_mid = _residuals(module, a, scale=0.0)
    assert all(not r.any() for r in zero_down) and not zero_mid.any()
    # the conditions reach the residuals: the content and the trajectory maps
    moved = dict(a, motion=a["motion"] + 1.0)
    assert not torch.allclose(_residuals(module, moved)[1], mid)
    recoloured = dict(a, content=-a["content"])
    assert not torch.allclose(_residuals(module, recoloured)[1], mid)


def _temb(module: ControlModule, t: float) -> torch.Tensor:
    return module.time_embedding(module.time_proj(torch.tensor([t])))


@torch.no_grad()
def test_safm_gamma_depends_on_the_timestep_only_with_safm(unet: Any) -> None:
    g = torch.Generator().manual_seed(3)
    mask = (torch.rand(1, 1, H, W, generator=g) > 0.5).float()
    gammas = {}
    for fusion in ("safm", "safm_no_t"):
        module = _control(unet, fusion=fusion)
        fresh = module.safm(mask, _temb(module, 0.1))
        assert fresh.shape == (1, 1, H // 4, W // 4)
        assert torch.equal(fresh, torch.full_like(fresh, 0.5))  # an even blend at first
        _perturb(module)
        early, late = module.safm(mask, _temb(module, 0.1)), module.safm(mask, _temb(module, 900.0))
        assert ((early > 0) & (early < 1)).all()
        gammas[fusion] = (early, late)
        # Γ depends on the mask in both
        assert not torch.allclose(module.safm(1 - mask, _temb(module, 0.1)), early)
    assert not torch.allclose(*gammas["safm"])
    assert torch.equal(*gammas["safm_no_t"])


def test_save_and_load_keep_the_fusion_and_the_weights(unet: Any, tmp_path: Path) -> None:
    for fusion in FUSIONS:
        module = _control(unet, fusion=fusion)
        _perturb(module, seed=5)
        module.save_pretrained(tmp_path / fusion)
        back = ControlModule.from_pretrained(tmp_path / fusion).eval()
        assert back.config.fusion == fusion
        assert tuple(back.config.encoder_strides) == STRIDES and tuple(back.config.encoder_channels) == CHANNELS
        ours, theirs = module.state_dict(), back.state_dict()
        assert set(ours) == set(theirs)
        for n, v in ours.items():
            assert torch.equal(v, theirs[n]), n
        a = _inputs(unet)
        with torch.no_grad():
            d1, m1 = _residuals(module, a)
            d2, m2 = _residuals(back, a)
        assert torch.equal(m1, m2) and all(torch.equal(x, y) for x, y in zip(d1, d2, strict=True))


def test_an_unknown_fusion_or_encoder_is_refused(unet: Any) -> None:
    with pytest.raises(ValueError, match="fusion must be one of"):
        _control(unet, fusion="concat")
    with pytest.raises(ValueError, match="three blocks"):
        ControlModule.from_unet(unet, encoder_strides=(2, 2), encoder_channels=(8, 16))


@torch.no_grad()
def test_the_tiny_random_control_module_loads_and_is_not_zero(unet: Any) -> None:
    module = ControlModule.from_pretrained(TINY / "control").eval()
    a = _inputs(unet)
    down, mid = _residuals(module, a)
    assert [r.shape for r in down] == [s.shape for s in encoder_pass(unet, a["x"], a["t"], a["emb"], a["ids"]).skips]
    assert mid.any() and any(r.any() for r in down)


# --------------------------------------------------------------------------- the deblocking stage's weights


def _temporal_self_attention_kv(module: torch.nn.Module) -> set[str]:
    """Independently: every parameter of to_k / to_v under a temporal block's attn1."""
    out = set()
    for name, sub in module.named_modules():
        parts = name.split(".")
        if parts[-1] in ("to_k", "to_v") and parts[-2:-1] == ["attn1"] and "temporal_transformer_blocks" in parts:
            out |= {f"{name}.{p}" for p, _ in sub.named_parameters()}
    return out


def test_temporal_kv_names_are_the_temporal_self_attention_keys_and_values(unet: Any) -> None:
    module = _control(unet)
    for m in (unet, module):
        names = temporal_kv_names(m)
        assert names, type(m).__name__
        assert len(names) == len(set(names))
        for n in names:
            assert "temporal_transformer_blocks" in n and ".attn1." in n and (".to_k." in n or ".to_v." in n), n
        assert set(names) == _temporal_self_attention_kv(m)
        assert any(".to_k." in n for n in names) and any(".to_v." in n for n in names)
        params = dict(m.named_parameters())
        assert all(n in params for n in names)
    # the control module's are the encoder half's: a subset of the UNet's, by name
    assert set(temporal_kv_names(module)) < set(temporal_kv_names(unet))
    # spatial attention, cross-attention and queries are not among them
    every = [n for n, _ in unet.named_parameters()]
    left_out = set(every) - set(temporal_kv_names(unet))
    assert any(".transformer_blocks." in n and ".attn1.to_k." in n for n in left_out)
    assert any("temporal_transformer_blocks" in n and ".attn2.to_k." in n for n in left_out)
    assert any("temporal_transformer_blocks" in n and ".attn1.to_q." in n for n in left_out)


def test_the_base_kv_file_holds_exactly_the_temporal_kv() -> None:
    from diffusers import UNetSpatioTemporalConditionModel
    from safetensors.torch import load_file

    stored = load_file(str(TINY / "base_kv.safetensors"))
    fresh = UNetSpatioTemporalConditionModel.from_pretrained(TINY / "unet")
    assert set(stored) == set(temporal_kv_names(fresh))


def test_the_control_module_builds_on_the_meta_device() -> None:
    """Found at full size (benchmarks/fullsize.py): the module must build under ``torch.device("meta")``
    (counting the SVD-XT-sized module, or any loader that creates weights empty first); SAFM's pooling
    factor was a tensor product, which the meta device cannot turn into an int."""
    cfg = ControlModule.load_config(TINY / "control")
    with torch.device("meta"):
        control = ControlModule.from_config(cfg)
    assert control.safm is not None and control.safm.pool == 4
    assert next(control.parameters()).is_meta
