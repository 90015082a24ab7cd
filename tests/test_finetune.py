"""engines/common/finetune.py: parameter selection, the epsilon loop, the safetensors delta."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engines.common.finetune import (
    FinetuneConfig,
    delta_metadata,
    finetune,
    load_delta,
    save_delta,
    select_parameters,
)

REPO = Path(__file__).resolve().parent.parent
SD = REPO / "models" / "tiny-random" / "sd"


def _unet() -> torch.nn.Module:
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_pretrained(SD / "unet").eval()


def _scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_pretrained(SD / "scheduler")


def _data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    latents = torch.randn(2, 4, 8, 8, generator=g)
    cond = torch.randn(1, 6, 32, generator=g).repeat(2, 1, 1)
    return latents, cond


def _eval_loss(unet: torch.nn.Module, data: tuple[torch.Tensor, torch.Tensor], sched) -> float:
    """Mean noise-regression loss over fixed noise and timesteps (independent of the training draws)."""
    latents, cond = data
    g = torch.Generator().manual_seed(123)
    total = 0.0
    with torch.no_grad():
        for t in (50, 300, 600, 900):
            noise = torch.randn(latents.shape, generator=g)
            ts = torch.full((latents.shape[0],), t)
            pred = unet(sched.add_noise(latents, noise, ts), ts, encoder_hidden_states=cond).sample
            total += float(torch.nn.functional.mse_loss(pred, noise))
    return total / 4


def test_select_parameters_patterns_and_errors() -> None:
    unet = _unet()
    q = select_parameters(unet, ["attn1.to_q"])
    assert q and all(n.endswith("attn1.to_q.weight") for n in q)
    rx = select_parameters(unet, [r"re:attn[12]\.to_q\.weight$"])
    assert set(q) < set(rx) and any("attn2" in n for n in rx)
    with pytest.raises(ValueError, match="'no_such_layer' matches no parameter"):
        select_parameters(unet, ["no_such_layer"])


def test_finetune_trains_only_selected_and_reduces_loss(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    sched = _scheduler()
    data = _data()
    unet = _unet()
    before = {n: p.detach().clone() for n, p in unet.named_parameters()}
    params = select_parameters(unet, ["attn1.to_q", "attn2.to_q", "conv_out"])
    loss0 = _eval_loss(unet, data, sched)
    res = finetune(unet, params, data, sched, FinetuneConfig(steps=40, lr=3e-3, seed=1))
    loss1 = _eval_loss(unet, data, sched)
    assert len(res.losses) == 40 and res.names == list(params)
    assert loss1 < 0.9 * loss0, (loss0, loss1)
    changed = {n for n, p in unet.named_parameters() if not torch.equal(p, before[n])}
    assert changed == set(params)
    assert not any(p.requires_grad for p in unet.parameters())

    # the delta holds exactly the trained tensors, and is far smaller than the UNet
    path = save_delta(params, tmp_path / "delta.safetensors", {"steps": 40, "base": "tiny"})
    full = sum(p.numel() for p in unet.parameters())
    assert sum(p.numel() for p in params.values()) < full / 5
    assert delta_metadata(path) == {"steps": "40", "base": "tiny"}

    fresh = _unet()
    assert sorted(load_delta(fresh, path)) == sorted(params)
    g = torch.Generator().manual_seed(5)
    x, t, c = torch.randn(1, 4, 8, 8, generator=g), torch.tensor([500]), data[1][:1]
    with torch.no_grad():
        assert torch.equal(fresh(x, t, encoder_hidden_states=c).sample, unet(x, t, encoder_hidden_states=c).sample)


def test_finetune_is_seeded_and_accepts_a_batch_function() -> None:
    torch.set_num_threads(1)
    sched = _scheduler()
    data = _data()
    calls: list[int] = []

    def batches(step: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append(step)
        return data if step % 2 == 0 else (data[0][:1], data[1][:1])

    runs = []
    for _ in range(2):
        unet = _unet()
        params = select_parameters(unet, ["attn1.to_q"])
        res = finetune(unet, params, batches, sched, FinetuneConfig(steps=4, lr=1e-3, seed=7, warmup_steps=2))
        runs.append((res.losses, {n: p.detach().clone() for n, p in params.items()}))
    assert calls == [0, 1, 2, 3] * 2
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(runs[0][1][n], runs[1][1][n]) for n in runs[0][1])


def test_load_delta_rejects_foreign_tensors(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    unet = _unet()
    save_file({"not.a.param": torch.zeros(2)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(KeyError, match=r"not\.a\.param"):
        load_delta(unet, tmp_path / "bad.safetensors")
    assert load_delta(unet, tmp_path / "bad.safetensors", strict=False) == []
    name = next(iter(select_parameters(unet, ["conv_out.weight"])))
    save_file({name: torch.zeros(3)}, str(tmp_path / "shape.safetensors"))
    with pytest.raises(ValueError, match="has shape"):
        load_delta(unet, tmp_path / "shape.safetensors")
