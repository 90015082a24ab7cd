"""The gen1 engine: structure levels, the widened UNet, ω/ω_t exactness, masks, files in params,
the stage graph's sharing, and validation that names the field."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from engines.common.guidance import content_temporal_eps
from engines.common.structure import T_S_MAX, structure_level, ts_embedding, widen_conv_in
from engines.common.temporal import frames_mode
from recut.cli import app
from recut.models import REPO_ROOT
from recut.plan import build_plan
from recut.runner import run_plan
from recut.spec import load_spec
from recut.store import Store
from tests.conftest import Project

TINY_GEN1 = REPO_ROOT / "models" / "tiny-random" / "gen1"

SPEC = """\
method: gen1
input:
  toy:
    objects:
      - {shape: circle, colour: red, size: large, motion: right}
    background: {kind: plain, colour: white}
    frames: 4
    seed: 3
model: {profile: tiny-random}
seed: 0
params: {steps: 2}
edits:
  - {name: green, prompt: a large green circle moving right over a plain white background}
evaluate: [psnr]
"""


def _unet() -> Any:
    from diffusers import UNet3DConditionModel

    return UNet3DConditionModel.from_pretrained(TINY_GEN1 / "unet").eval()


# --------------------------------------------------------------------------- structure


def test_structure_levels_blur_more_as_t_s_grows() -> None:
    rng = np.random.default_rng(0)
    maps = rng.random((2, 32, 32)).astype(np.float32)
    assert np.array_equal(structure_level(maps, 0), maps)  # t_s = 0 is the map itself
    detail = [float(np.abs(np.diff(structure_level(maps, k), axis=2)).mean()) for k in range(T_S_MAX + 1)]
    assert all(a > b for a, b in itertools.pairwise(detail[:5])), detail  # 32 px: 5 halvings to 1 px
    assert all(a >= b - 1e-6 for a, b in itertools.pairwise(detail)), detail
    assert structure_level(maps, T_S_MAX).shape == maps.shape
    with pytest.raises(ValueError, match=r"0\.\.7"):
        structure_level(maps, T_S_MAX + 1)
    emb = ts_embedding(torch.arange(T_S_MAX + 1))
    assert emb.shape == (T_S_MAX + 1, 4) and len({tuple(r) for r in emb.round(decimals=4).tolist()}) == T_S_MAX + 1


def test_a_widened_conv_in_starts_as_the_original_model() -> None:
    from diffusers import UNet3DConditionModel

    unet = UNet3DConditionModel.from_pretrained(REPO_ROOT / "models" / "tiny-random" / "t2v" / "unet").eval()
    x = torch.randn(1, 4, 3, 8, 8)
    ctx = torch.randn(1, 77, unet.config.cross_attention_dim)
    with torch.no_grad():
        before = unet(x, 10, encoder_hidden_states=ctx).sample
        widen_conv_in(unet, 8)
        after = unet(torch.cat([x, torch.randn(1, 8, 3, 8, 8)], 1), 10, encoder_hidden_states=ctx).sample
    assert unet.config.in_channels == 12 and unet.conv_in.in_channels == 12
    torch.testing.assert_close(after, before)


# --------------------------------------------------------------------------- guidance


def test_omega_and_omega_t_at_their_ends_are_the_plain_models() -> None:
    unet = _unet()
    x = torch.randn(1, 12, 3, 8, 8)
    cond = torch.randn(1, 77, unet.config.cross_attention_dim)
    uncond = torch.randn(1, 77, unet.config.cross_attention_dim)
    calls: list[int] = []

    def fn(lat: torch.Tensor, t: Any, ctx: torch.Tensor) -> torch.Tensor:
        calls.append(lat.shape[0])
        return unet(lat, t, encoder_hidden_states=ctx).sample

    with torch.no_grad():
        video = unet(x, 5, encoder_hidden_states=cond).sample
        video_u = unet(x, 5, encoder_hidden_states=uncond).sample
        with frames_mode(unet):
            image = unet(x, 5, encoder_hidden_states=cond).sample
            image_u = unet(x, 5, encoder_hidden_states=uncond).sample
        # ω_t = 1, ω = 1: the plain (unguided) video model, one pass
        torch.testing.assert_close(content_temporal_eps(unet, fn, x, 5, cond, uncond, 1.0, 1.0), video)
        assert calls == [1]
        # ω_t = 0, ω = 1: exactly the image model (temporal layers off)
        torch.testing.assert_close(content_temporal_eps(unet, fn, x, 5, cond, uncond, 1.0, 0.0), image)
        assert not torch.allclose(image, video)
        # in between: cfg_π + ω_t (cfg_θ − cfg_π), with cfg_m = ε_m(∅) + ω (ε_m(c) − ε_m(∅))
        got = content_temporal_eps(unet, fn, x, 5, cond, uncond, 3.0, 1.5)
    cfg_v = video_u + 3.0 * (video - video_u)
    cfg_i = image_u + 3.0 * (image - image_u)
    torch.testing.assert_close(got, cfg_i + 1.5 * (cfg_v - cfg_i), rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- the engine, end to end


def _run(spec_path: Path, store: Store) -> dict[str, Any]:
    from recut.outputs import materialize

    plan = build_plan([load_spec(spec_path)], store)
    refs = run_plan(plan, store.root)
    kinds = {n.stage.name: n.kind for n in plan.ordered()}
    return {"plan": plan, "refs": refs, "summary": materialize(plan.specs[0], refs, kinds)}


def _sample_dir(res: dict[str, Any]) -> Path:
    node = next(n for n in res["plan"].ordered() if n.stage.name == "sample")
    return res["refs"][node.key].dir


def _pre_frames(res: dict[str, Any]) -> np.ndarray:
    node = next(n for n in res["plan"].ordered() if n.stage.name == "preprocess")
    return np.load(res["refs"][node.key].dir / "frames.npy")


@pytest.mark.parametrize(
    "mask",
    [
        "{truth: true, keep: outside}",
        "{boxes: [[0, 0, 32, 64]], keep: inside}",
        "{file: mask.npy, keep: outside}",
    ],
)
def test_a_masked_edit_keeps_the_kept_region_exactly(project: Project, mask: str) -> None:
    region = np.zeros((64, 64), dtype=bool)
    region[20:44, 20:44] = True
    np.save(project.root / "specs" / "mask.npy", region)
    spec = project.spec(SPEC.replace("params: {steps: 2}", f"params: {{steps: 2, mask: {mask}}}"))
    res = _run(spec, Store(project.store))
    out = np.load(_sample_dir(res) / "frames.npy")
    edited = np.load(_sample_dir(res) / "edit_mask.npy")
    src = _pre_frames(res)
    assert edited.shape == out.shape[:3] and edited.any() and (~edited).any()
    assert np.array_equal(out[~edited], src[~edited])  # pasted back: the kept pixels are the input's
    assert not np.array_equal(out[edited], src[edited])  # the masked region was regenerated
    if "boxes" in mask:  # keep inside the box: the edited region is everything right of x = 32
        assert edited[:, :, 32:].all() and not edited[:, :, :32].any()


def test_without_paste_back_the_kept_region_comes_through_the_vae(project: Project) -> None:
    spec = project.spec(
        SPEC.replace("params: {steps: 2}", "params: {steps: 2, mask: {truth: true, paste_back: false}}")
    )
    res = _run(spec, Store(project.store))
    out, src = np.load(_sample_dir(res) / "frames.npy"), _pre_frames(res)
    kept = ~np.load(_sample_dir(res) / "edit_mask.npy")
    assert not np.array_equal(out[kept], src[kept])


def test_content_from_an_image_and_from_the_prior(project: Project) -> None:
    from PIL import Image

    Image.fromarray(np.full((32, 32, 3), (30, 200, 60), np.uint8)).save(project.root / "media" / "ref.png")
    store = Store(project.store)
    outs = {}
    for name, params in {
        "text": "{steps: 2}",
        "image": "{steps: 2, content: image, content_image: ../media/ref.png}",
        "prior": "{steps: 2, content: prior}",
    }.items():
        spec = project.spec(SPEC.replace("params: {steps: 2}", f"params: {params}"), name=f"{name}.yaml")
        res = _run(spec, store)
        outs[name] = np.load(_sample_dir(res) / "frames.npy")
        assert json.loads((_sample_dir(res) / "ref.json").read_text())["meta"]["content"] == name
    assert not np.array_equal(outs["text"], outs["image"]) and not np.array_equal(outs["text"], outs["prior"])


@pytest.mark.parametrize("content", ["image", "prior"])
def test_image_and_prior_content_run_in_half_precision(project: Project, content: str) -> None:
    """Found at full size (benchmarks/fullsize.py, bfloat16): the content projection and the prior load in
    float32 as saved while the UNet runs in half precision; the embedding must meet each in its own dtype."""
    from PIL import Image

    Image.fromarray(np.full((32, 32, 3), (30, 200, 60), np.uint8)).save(project.root / "media" / "ref.png")
    extra = ", content_image: ../media/ref.png" if content == "image" else ""
    text = SPEC.replace("params: {steps: 2}", f"params: {{steps: 2, content: {content}{extra}}}")
    spec = project.spec(text.replace("{profile: tiny-random}", "{profile: tiny-random, dtype: bfloat16}"))
    out = np.load(_sample_dir(_run(spec, Store(project.store))) / "frames.npy")
    assert out.shape == (4, 64, 64, 3) and out.dtype == np.uint8


# --------------------------------------------------------------------------- the stage graph


def test_a_structure_by_guidance_sweep_runs_one_extraction(project: Project) -> None:
    text = SPEC + "sweep:\n  params.structure_level: [0, 3, 6]\n  params.temporal_guidance: [0.0, 1.0, 2.0]\n"
    plan = build_plan([load_spec(project.spec(text))])
    by_stage: dict[str, int] = {}
    for n in plan.ordered():
        by_stage[n.stage.name] = by_stage.get(n.stage.name, 0) + 1
    assert by_stage == {"preprocess": 1, "extract": 1, "finetune": 1, "sample": 9, "evaluate": 9}


def test_the_content_image_enters_the_key_by_content_not_path(project: Project) -> None:
    from PIL import Image

    ref = project.root / "media" / "ref.png"
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(ref)
    text = SPEC.replace("params: {steps: 2}", "params: {steps: 2, content: image, content_image: ../media/ref.png}")
    spec = project.spec(text)

    def keys() -> dict[str, str]:
        return {n.stage.name: n.key for n in build_plan([load_spec(spec)]).ordered()}

    first = keys()
    moved = project.root / "media" / "moved.png"
    ref.rename(moved)
    spec.write_text(spec.read_text().replace("ref.png", "moved.png"))
    assert keys() == first  # same bytes elsewhere: same keys
    Image.fromarray(np.full((32, 32, 3), 10, np.uint8)).save(moved)
    changed = keys()
    assert changed["extract"] == first["extract"] and changed["finetune"] == first["finetune"]
    assert changed["sample"] != first["sample"]


# --------------------------------------------------------------------------- customization


def _subject(project: Project) -> None:
    from PIL import Image

    from toyworld import scene as toy

    for i, shape in enumerate(("triangle", "triangle")):
        still = toy.ToyObject(shape=shape, colour="green", size="large", motion="static", start=(0.3 + 0.3 * i, 0.5))
        img = toy.render(toy.ToyScene(objects=[still], frames=1)).frames[0]
        Image.fromarray(img).save(project.root / "media" / f"subject-{i}.png")


CUSTOM = (
    "params: {steps: 2, customize: {images: [../media/subject-0.png, ../media/subject-1.png], "
    "prompt: a green triangle, regularization: [media/clip.mp4], steps: 3, lr: 0.01}}"
)


def test_customization_tunes_a_copy_once_per_subject(project: Project) -> None:
    from engines.common.finetune import delta_metadata

    _subject(project)
    store = Store(project.store)
    plain = _run(project.spec(SPEC, name="plain.yaml"), store)
    custom_text = SPEC.replace("params: {steps: 2}", CUSTOM).replace(
        "  - {name: green,", "  - {name: other, prompt: a green triangle}\n  - {name: green,"
    )
    custom = _run(project.spec(custom_text, name="custom.yaml"), store)
    ft = [n for n in custom["plan"].ordered() if n.stage.name == "finetune"]
    assert len(ft) == 1 and len(ft[0].instances) == 2  # one finetune serves both edits
    delta = custom["refs"][ft[0].key].dir / "delta.safetensors"
    assert delta_metadata(delta)["customized"] == "true"
    from safetensors.torch import load_file

    names = list(load_file(str(delta)))
    assert names and all("attn1" in n or "attn2" in n for n in names)
    node = next(n for n in custom["plan"].ordered() if n.stage.name == "sample" and n.instances[0].edit == "green")
    tuned = np.load(custom["refs"][node.key].dir / "frames.npy")
    base = np.load(_sample_dir(plain) / "frames.npy")
    assert not np.array_equal(tuned, base)  # the delta changed the samples
    # the engine's loaded UNet is untouched: the plain spec, recomputed, gives the same frames
    again = _run(project.spec(SPEC.replace("seed: 0", "seed: 0\n"), name="plain2.yaml"), Store(project.root / "s2"))
    assert np.array_equal(np.load(_sample_dir(again) / "frames.npy"), base)


def test_without_customize_the_finetune_is_empty_and_shared(project: Project) -> None:
    from engines.common.finetune import delta_metadata

    a = build_plan([load_spec(project.spec(SPEC, name="a.yaml"))])
    b = build_plan([load_spec(project.spec(SPEC.replace("seed: 0", "seed: 0\nname: b"), name="b.yaml"))])
    key = {n.stage.name: n.key for n in a.ordered()}["finetune"]
    assert key == {n.stage.name: n.key for n in b.ordered()}["finetune"]
    res = _run(project.spec(SPEC, name="c.yaml"), Store(project.store))
    node = next(n for n in res["plan"].ordered() if n.stage.name == "finetune")
    assert delta_metadata(res["refs"][node.key].dir / "delta.safetensors")["customized"] == "false"


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ("{structure_level: 8}", "params.structure_level", "less than or equal to 7"),
        ("{temporal_guidance: -1}", "params.temporal_guidance", "greater than or equal to 0"),
        ("{content: image}", "params", "needs `content_image`"),
        ("{content: image, content_image: ../media/none.png}", "params.content_image", "not found"),
        ("{content: image, content_image: notes.txt}", "params.content_image", "notes.txt"),
        ("{mask: {file: small.npy}}", "params.mask.file", "but the input is [4, 64, 64]"),
        ("{mask: {boxes: [[0, 0, 70, 10]]}}", "params.mask.boxes.0", "outside the 64x64 frames"),
        ("{mask: {boxes: [[5, 5, 5, 10]]}}", "params.mask", "is empty"),
        ("{mask: {boxes: [[0.6, 0.6, 1.4, 1.4]]}}", "params.mask.boxes.0", "covers no pixel of the frames"),
        ("{mask: {boxes: [[63.6, 0, 64, 10]]}}", "params.mask.boxes.0", "covers no pixel of the frames"),
        (
            "{customize: {images: [subject.png], prompt: a cat, trainable: ['re:[']}}",
            "params.customize.trainable",
            "'re:[' is not a regular expression",
        ),
        (
            "{customize: {images: [subject.png], prompt: a cat, trainable: [attn1, nomatch_zz]}}",
            "params.customize.trainable.1",
            "'nomatch_zz' matches no parameter of the model's UNet",
        ),
        ("{mask: {truth: true, boxes: [[0, 0, 8, 8]]}}", "params.mask", "exactly one of file, truth, boxes"),
        ("{customize: {images: [notes.txt], prompt: a cat}}", "params.customize.images.0", "notes.txt"),
        ("{customize: {images: [], prompt: a cat}}", "params.customize.images", "at least 1 item"),
    ],
)
def test_bad_params_are_refused_with_the_field_named(project: Project, params: str, field: str, message: str) -> None:
    from recut.video import write_image

    (project.root / "specs" / "notes.txt").write_text("not an image")
    np.save(project.root / "specs" / "small.npy", np.ones((4, 32, 32), bool))
    write_image(project.root / "specs" / "subject.png", np.zeros((64, 64, 3), np.uint8))
    spec = project.spec(SPEC.replace("params: {steps: 2}", f"params: {params}"))
    res = CliRunner().invoke(app, ["validate", str(spec)])
    assert res.exit_code == 2, res.output
    assert f": {field}:" in res.output and message in res.output, res.output
    assert "Traceback" not in res.output


def test_a_truth_mask_needs_a_toy_input(project: Project) -> None:
    text = """\
method: gen1
input: {video: media/clip.mp4, frames: {count: 4}}
model: {profile: tiny-random}
params: {mask: {truth: true}}
edits: [{prompt: a cat}]
"""
    res = CliRunner().invoke(app, ["validate", str(project.spec(text))])
    assert res.exit_code == 2 and "params.mask.truth: a truth mask needs a toy input" in res.output, res.output


def test_an_edit_override_is_reported_where_it_was_written(project: Project) -> None:
    text = SPEC.replace("  - {name: green, prompt:", "  - {name: green, params: {mask: {file: small.npy}}, prompt:")
    np.save(project.root / "specs" / "small.npy", np.ones((3, 64, 64), bool))
    res = CliRunner().invoke(app, ["validate", str(project.spec(text))])
    assert res.exit_code == 2 and "edits.0.params.mask.file" in res.output, res.output
