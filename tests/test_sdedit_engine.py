"""The sdedit engine on the tiny-random profile (CPU, a few seconds)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from engines.sdedit import ENGINE
from engines.sdedit.engine import SAMPLE, n_steps
from engines.sdedit.params import SDEditParams
from recut.engine import StageContext
from recut.models import resolve

T, H, W = 4, 32, 48


@pytest.fixture(scope="module")
def engine() -> Any:
    return ENGINE(resolve(profile="tiny-random"))


@pytest.fixture(scope="module")
def pre_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("preprocess")
    frames = np.random.default_rng(0).integers(0, 256, (T, H, W, 3), dtype=np.uint8)
    np.save(d / "frames.npy", frames)
    (d / "info.json").write_text(json.dumps({"fps": 12.0, "frames": T, "height": H, "width": W}))
    return d


def _values(**over: Any) -> dict[str, Any]:
    """The sample stage's declared values, from the params model's defaults, as the planner gives them."""
    defaults = SDEditParams(strength=0.5, steps=6).model_dump(mode="json")
    vals: dict[str, Any] = {
        k: defaults[k[len("params.") :]] for k in SAMPLE.reads + SAMPLE.options if k.startswith("params.")
    }
    vals.update(
        {
            "edit.prompt": "a painting of a cat",
            "edit.negative_prompt": "",
            "model": {"identity": "x", "dtype": "float32"},
            "seed": 0,
        }
    )
    vals.update({f"params.{k}" if k not in ("seed",) and "." not in k else k: v for k, v in over.items()})
    return vals


def _run(engine: Any, pre_dir: Path, tmp_path: Path, seed: int = 0, **over: Any) -> tuple[np.ndarray, dict, list]:
    out = tmp_path / f"out-{len(list(tmp_path.iterdir()))}"
    out.mkdir()
    calls: list[tuple[int, int]] = []
    values = _values(seed=seed, **over)
    ctx = StageContext(values, {"preprocess": pre_dir}, out, lambda i, n: calls.append((i, n)), seed)
    meta = engine.run_stage("sample", ctx)
    assert sorted(p.name for p in out.iterdir()) == ["frames.npy"]
    return np.load(out / "frames.npy"), meta, calls


def test_stage_graph() -> None:
    assert [s.name for s in ENGINE.stages] == ["preprocess", "sample", "evaluate"]
    assert ENGINE.name == "sdedit" and ENGINE.params_model is SDEditParams
    assert "params.frame_batch" not in SAMPLE.reads
    assert SAMPLE.uses_model and SAMPLE.per_edit and SAMPLE.after == ("preprocess",)
    assert callable(ENGINE.preprocess) and callable(ENGINE.evaluate)


def test_params() -> None:
    p = SDEditParams()
    assert (p.strength, p.steps, p.guidance_scale, p.eta, p.variant, p.frame_batch) == (
        0.6,
        20,
        7.5,
        0.0,
        "image",
        8,
    )
    for bad in (
        {"strength": 1.5},
        {"steps": 0},
        {"guidance_scale": 0.5},
        {"eta": -0.1},
        {"variant": "3d"},
        {"frame_batch": 0},
        {"unknown": 1},
    ):
        with pytest.raises(ValidationError):
            SDEditParams(**bad)
    assert all(f.description for f in SDEditParams.model_fields.values())
    assert n_steps(20, 0.6) == 12 and n_steps(10, 0.9) == 9 and n_steps(7, 0.0) == 0 and n_steps(7, 1.0) == 7


def test_shape_progress_and_determinism(engine: Any, pre_dir: Path, tmp_path: Path) -> None:
    a, meta, calls = _run(engine, pre_dir, tmp_path, seed=3)
    assert a.shape == (T, H, W, 3) and a.dtype == np.uint8
    assert meta == {"frames": T, "height": H, "width": W, "fps": 12.0, "steps_run": 3}
    assert calls == [(1, 3), (2, 3), (3, 3)]
    b, _, _ = _run(engine, pre_dir, tmp_path, seed=3)
    assert np.array_equal(a, b)
    c, _, _ = _run(engine, pre_dir, tmp_path, seed=4)
    assert not np.array_equal(a, c)
    d, _, _ = _run(engine, pre_dir, tmp_path, seed=3, **{"edit.prompt": "a dog"})
    assert not np.array_equal(a, d)


def test_guidance_interval_drops_guidance_outside_it(engine: Any, pre_dir: Path, tmp_path: Path) -> None:
    """At strength 0.5 no timestep of the run lies in [0.34, 0.49] * T (the tiny model's 6-step grid
    is t = 831, 665, 499, 333, 167, 1): guiding only there equals no guidance, and guiding
    everywhere does not.  A window wholly above the strength is refused by the params."""
    outside, _, _ = _run(engine, pre_dir, tmp_path, guidance_interval=(0.34, 0.49))
    unguided, _, _ = _run(engine, pre_dir, tmp_path, guidance_scale=1.0)
    guided, _, _ = _run(engine, pre_dir, tmp_path)
    assert np.array_equal(outside, unguided) and not np.array_equal(guided, unguided)
    assert "params.guidance_interval" in SAMPLE.reads
    with pytest.raises(ValidationError, match="0 <= low < high <= 1"):
        SDEditParams(guidance_interval=(0.7, 0.2))
    with pytest.raises(ValidationError, match=r"\[0.9, 1.0\] starts at or above strength 0.5"):
        SDEditParams(strength=0.5, guidance_interval=(0.9, 1.0))


def test_frame_batch_does_not_change_result(engine: Any, pre_dir: Path, tmp_path: Path) -> None:
    a, _, _ = _run(engine, pre_dir, tmp_path, eta=0.5, frame_batch=8)
    b, _, _ = _run(engine, pre_dir, tmp_path, eta=0.5, frame_batch=1)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_strength_zero_is_vae_reconstruction(engine: Any, pre_dir: Path, tmp_path: Path) -> None:
    a, meta, calls = _run(engine, pre_dir, tmp_path, strength=0.0, seed=1)
    b, _, _ = _run(engine, pre_dir, tmp_path, strength=0.0, seed=2, **{"edit.prompt": "other"})
    assert meta["steps_run"] == 0 and calls == []
    assert np.array_equal(a, b)  # no noise, no text: only the VAE
    import torch

    comps = engine._components["image"]
    x = torch.from_numpy(np.load(pre_dir / "frames.npy")).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.inference_mode():
        rec = comps.vae.decode(comps.vae.encode(x).latent_dist.mode()).sample
    rec = ((rec / 2 + 0.5).clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    # the engine scales latents by scaling_factor and back: allow one level of rounding
    assert np.abs(a.astype(int) - rec.astype(int)).max() <= 1


def test_same_noise_every_frame(engine: Any, tmp_path: Path) -> None:
    pre = tmp_path / "same"
    pre.mkdir()
    frame = np.random.default_rng(1).integers(0, 256, (1, H, W, 3), dtype=np.uint8)
    np.save(pre / "frames.npy", np.repeat(frame, 3, axis=0))
    (pre / "info.json").write_text(json.dumps({"fps": 8.0}))
    a, _, _ = _run(engine, pre, tmp_path, strength=0.8, eta=1.0, frame_batch=2)
    assert np.array_equal(a[0], a[1]) and np.array_equal(a[0], a[2])


def test_video_variant_and_strength_one(engine: Any, pre_dir: Path, tmp_path: Path) -> None:
    a, meta, calls = _run(engine, pre_dir, tmp_path, variant="video", eta=1.0)
    assert a.shape == (T, H, W, 3) and a.dtype == np.uint8
    assert meta["steps_run"] == 3 and calls[-1] == (3, 3) and len(calls) == 3
    b, _, _ = _run(engine, pre_dir, tmp_path, variant="video", eta=1.0)
    assert np.array_equal(a, b)
    c, meta, calls = _run(engine, pre_dir, tmp_path, variant="video", strength=1.0, guidance_scale=1.0)
    assert meta["steps_run"] == 6 and len(calls) == 6 and c.shape == a.shape


def test_loads_counted_once_per_variant(tmp_path: Path, pre_dir: Path) -> None:
    eng = ENGINE(resolve(profile="tiny-random"))
    eng.load()
    assert eng.loaded and eng.loads == 0  # weights load lazily, per variant
    _run(eng, pre_dir, tmp_path, steps=2)
    _run(eng, pre_dir, tmp_path, steps=2, strength=0.9)
    assert eng.loads == 1
    _run(eng, pre_dir, tmp_path, steps=2, variant="video")
    _run(eng, pre_dir, tmp_path, steps=2, variant="video")
    assert eng.loads == 2
