"""engines/common/sampling.py: strength schedule, start point, DDIM loop, frame chunking, guidance."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from engines.common import sampling

CONFIG = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
}


def _eps(x: Any, t: Any) -> Any:
    return 0.1 * x + 0.01 * float(t) / 1000  # a smooth, input-dependent stand-in for a UNet


def _ddim_scheduler_configs() -> list[Any]:
    """Every DDIM-family scheduler config among the models kept in the repo (toy, tiny-random, full-size)."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "models"
    found = [p for p in sorted(root.glob("**/scheduler/scheduler_config.json")) if ".work" not in str(p)]
    cfgs = [(str(p.relative_to(root)), json.loads(p.read_text())) for p in found]
    return [pytest.param(c, id=name) for name, c in cfgs if c["_class_name"] != "EulerDiscreteScheduler"]


@pytest.mark.parametrize("config", _ddim_scheduler_configs())
def test_the_most_steps_a_spec_may_ask_stay_inside_every_models_timesteps(config: dict[str, Any]) -> None:
    from engines.common.params import MAX_STEPS

    _, ts = sampling.schedule(config, MAX_STEPS, 1.0)
    assert len(ts) == MAX_STEPS and int(ts.max()) < config["num_train_timesteps"]


@pytest.mark.parametrize(("steps", "s", "n"), [(20, 0.6, 12), (10, 0.9, 9), (7, 0.0, 0), (7, 1.0, 7), (30, 0.5, 15)])
def test_strength_schedule(steps: int, s: float, n: int) -> None:
    sched, ts = sampling.schedule(CONFIG, steps, s)
    assert sampling.n_steps(steps, s) == n and len(ts) == n
    if n:  # the last n timesteps of the full schedule, ending at the lowest
        assert list(ts) == list(sched.timesteps[steps - n :]) and int(ts[-1]) == int(sched.timesteps[-1])


def test_strength_zero_returns_input_and_one_ignores_it() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 3, 8, 8, generator=g)
    noise = torch.randn(x.shape, generator=g)
    sched, ts = sampling.schedule(CONFIG, 10, 0.0)
    assert torch.equal(sampling.denoise(sched, ts, x, _eps, noise, 0.0), x)
    outs = []
    for inp in (x, torch.randn(x.shape, generator=g)):
        sched, ts = sampling.schedule(CONFIG, 10, 1.0)
        outs.append(sampling.denoise(sched, ts, inp, _eps, noise, 1.0))
    assert torch.equal(outs[0], outs[1])
    sched, ts = sampling.schedule(CONFIG, 10, 0.5)
    mid = sampling.denoise(sched, ts, x, _eps, noise, 0.5)
    assert not torch.equal(mid, outs[0])  # a partial strength keeps information of the input
    assert (mid - x).abs().mean() < (outs[0] - x).abs().mean()


def test_eta_draws_variance_noise_and_reports_progress() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 8, 8, generator=g)
    noise = torch.randn(x.shape, generator=g)
    draws: list[int] = []
    calls: list[tuple[int, int]] = []

    def var() -> Any:
        draws.append(1)
        return torch.randn(x.shape, generator=g)

    sched, ts = sampling.schedule(CONFIG, 8, 0.5)
    a = sampling.denoise(
        sched, ts, x, _eps, noise, 0.5, eta=1.0, variance_noise=var, progress=lambda i, n: calls.append((i, n))
    )
    assert len(draws) == 4 and calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    sched, ts = sampling.schedule(CONFIG, 8, 0.5)
    b = sampling.denoise(sched, ts, x, _eps, noise, 0.5, eta=0.0, variance_noise=var)
    assert len(draws) == 4 and not torch.equal(a, b)  # eta 0 draws nothing and is deterministic DDIM


def test_chunked_equals_independent_chunks() -> None:
    seen: list[int] = []

    def eps(x: Any, t: Any) -> Any:
        seen.append(x.shape[2])
        return x.cumsum(dim=2)  # mixes frames: chunking must be visible

    x = torch.randn(1, 4, 7, 4, 4)
    out = sampling.chunked(eps, 3)(x, 10)
    assert seen == [3, 3, 1]
    want = torch.cat([x[:, :, :3].cumsum(2), x[:, :, 3:6].cumsum(2), x[:, :, 6:].cumsum(2)], dim=2)
    assert torch.equal(out, want)
    assert torch.equal(sampling.chunked(eps, 7)(x, 10), x.cumsum(2)) and sampling.chunked(eps, None) is eps


def test_guided_eps() -> None:
    class Net:
        def __call__(self, x: Any, t: Any, encoder_hidden_states: Any) -> Any:
            out = type("O", (), {})()
            out.sample = x * encoder_hidden_states.mean(dim=(1, 2)).view(-1, 1, 1, 1)
            return out

    x = torch.ones(2, 1, 2, 2)
    cond, uncond = torch.full((1, 3, 4), 2.0), torch.full((1, 3, 4), 1.0)
    assert torch.allclose(sampling.guided_eps(Net(), x, 1, cond, None, 7.5), 2 * x)
    assert torch.allclose(sampling.guided_eps(Net(), x, 1, cond, uncond, 3.0), (1 + 3.0 * (2 - 1)) * x)


def test_guidance_interval_guides_only_inside_its_window() -> None:
    """Inside the window: the guided prediction from one doubled batch; outside: the prompt's prediction
    alone, without the unconditional half; per-latent prompts are not repeated."""
    batches: list[int] = []

    class Net:
        def __call__(self, x: Any, t: Any, encoder_hidden_states: Any) -> Any:
            batches.append(x.shape[0])
            out = type("O", (), {})()
            out.sample = x * encoder_hidden_states.mean(dim=(1, 2)).view(-1, 1, 1, 1)
            return out

    window = sampling.guidance_window((0.5, 1.0), CONFIG)
    assert window == (500.0, 1000.0)
    assert sampling.guidance_window((0.0, 1.0), CONFIG) is None and sampling.guidance_window(None, CONFIG) is None
    x = torch.ones(2, 1, 2, 2)
    cond, uncond = torch.full((1, 3, 4), 2.0), torch.full((1, 3, 4), 1.0)
    assert torch.allclose(sampling.guided_eps(Net(), x, torch.tensor(700), cond, uncond, 3.0, window), 4 * x)
    assert torch.allclose(sampling.guided_eps(Net(), x, torch.tensor(499), cond, uncond, 3.0, window), 2 * x)
    assert batches == [4, 2]
    per_latent = torch.stack([torch.full((3, 4), 2.0), torch.full((3, 4), 5.0)])
    out = sampling.guided_eps(Net(), x, 100, per_latent, uncond, 3.0)
    assert torch.allclose(out[0], (1 + 3.0 * (2 - 1)) * x[0]) and torch.allclose(out[1], (1 + 3.0 * (5 - 1)) * x[1])


@pytest.mark.parametrize("bad", [(0.6, 0.4), (-0.1, 1.0), (0.0, 1.5), (0.5, 0.5)])
def test_a_bad_guidance_interval_is_refused(bad: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match=r"0 <= low < high <= 1"):
        sampling.guidance_window(bad, CONFIG)
