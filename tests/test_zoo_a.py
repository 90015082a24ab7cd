"""Toy model zoo, part A: tokenizer, CLIP / text encoder, VAE, depth, judges, recipes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from toyworld import judge
from toyworld.scene import ToyBackground, ToyObject, ToyScene, caption_vocabulary, render
from toyworld.zoo import data
from toyworld.zoo.recipes import RECIPES, TOY_DIR, main

torch.set_num_threads(1)


def _has(name: str, *files: str) -> bool:
    d = TOY_DIR / name
    return d.is_dir() and all((d / f).exists() for f in files)


needs = {
    "tokenizer": pytest.mark.skipif(
        not _has("tokenizer", "tokenizer_config.json"), reason="models/toy/tokenizer missing"
    ),
    "clip": pytest.mark.skipif(not _has("clip", "model.safetensors"), reason="models/toy/clip not trained"),
    "text_encoder": pytest.mark.skipif(
        not _has("text_encoder", "model.safetensors"), reason="models/toy/text_encoder missing"
    ),
    "vae": pytest.mark.skipif(
        not _has("vae", "diffusion_pytorch_model.safetensors"), reason="models/toy/vae not trained"
    ),
    "depth": pytest.mark.skipif(not _has("depth", "model.safetensors"), reason="models/toy/depth not trained"),
}


# --------------------------------------------------------------------------- tokenizer


def test_tokenizer_words_are_single_tokens(tmp_path: Path) -> None:
    from toyworld import tokenizer

    folder = tokenizer.save_tokenizer(tmp_path / "tok")
    res = tokenizer.check_tokenizer(folder)
    assert res["passed"], res
    tok = tokenizer.load_tokenizer(folder)
    for w in caption_vocabulary():
        ids = tok(w, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and tok.convert_ids_to_tokens(ids) == [w + "</w>"]
    # the longest possible caption fits with BOS/EOS
    longest = (
        " and ".join(["a small red circle moving in a circle"] * 3)
        + " over a striped yellow background, camera panning left"
    )
    ids = tok(longest)["input_ids"]
    assert len(ids) == 37 <= tokenizer.MAX_LENGTH
    assert tok("Zebra #42!")["input_ids"][1:-1]  # anything still tokenizes


@needs["tokenizer"]
def test_committed_tokenizer_round_trip() -> None:
    from toyworld import tokenizer

    res = tokenizer.check_tokenizer(TOY_DIR / "tokenizer")
    assert res["passed"] and res["fast"]["ok"], res


# --------------------------------------------------------------------------- committed models


@needs["vae"]
def test_committed_vae_loads_and_reconstructs() -> None:
    from diffusers import AutoencoderKL

    from toyworld.zoo import vae

    m = AutoencoderKL.from_pretrained(str(TOY_DIR / "vae"), local_files_only=True)
    assert m.config.latent_channels == 4 and m.config.scaling_factor != 1.0
    x = data.frame_batch("heldout", 2)["frames"]
    z = vae.encode(m, x)
    assert z.shape == (2, 4, 16, 16)
    assert vae.decode(m, z).shape == (2, 3, 64, 64)
    res = vae.evaluate(TOY_DIR / "vae", n=32, vae=m)
    assert res["psnr_mean"] >= 27.5, res


@needs["clip"]
def test_committed_clip_zero_shot() -> None:
    from transformers import CLIPModel, CLIPProcessor

    from toyworld.zoo import clip

    model = CLIPModel.from_pretrained(str(TOY_DIR / "clip"), local_files_only=True)
    proc = CLIPProcessor.from_pretrained(str(TOY_DIR / "clip"), local_files_only=True)
    assert model.config.vision_config.image_size == 64
    res = clip.evaluate(model=model.eval(), processor=proc, n=32)
    assert res["processor_max_abs_diff"] < 1e-3
    assert res["colour_acc"] >= 0.85 and res["shape_acc"] >= 0.85, res


@needs["text_encoder"]
def test_committed_text_encoder_matches_clip_text_tower() -> None:
    from toyworld.tokenizer import MAX_LENGTH, load_tokenizer
    from toyworld.zoo import clip

    res = clip.check_text_encoder(TOY_DIR / "text_encoder", TOY_DIR / "clip")
    assert res["passed"], res
    te = clip.load_text_encoder(TOY_DIR / "text_encoder")
    h = clip.encode_text(load_tokenizer(TOY_DIR / "tokenizer"), te, ["a red circle", "a blue square"])
    assert h.shape == (2, MAX_LENGTH, te.config.hidden_size)


@needs["depth"]
def test_committed_depth_order() -> None:
    from transformers import DPTForDepthEstimation, DPTImageProcessor

    from toyworld.zoo import depth

    m = DPTForDepthEstimation.from_pretrained(str(TOY_DIR / "depth"), local_files_only=True).eval()
    p = DPTImageProcessor.from_pretrained(str(TOY_DIR / "depth"), local_files_only=True)
    out = depth.predict(m, p, data.frame_batch("heldout", 2)["uint8"])
    assert out.shape == (2, 64, 64)
    res = depth.evaluate(model=m, processor=p, n=64)
    # regression floor on a quick subset of the held-out scenes
    assert res["occluding_pairs"] >= 20 and res["order_acc_occluding"] >= 0.85, res


def test_depth_augment_moves_frame_depth_and_masks_together() -> None:
    """The depth trainer's augmentation: one spatial transform per sample for frame, depth map and
    masks alike (so every object's mean depth, hence the ranking target, is unchanged), the frame's
    channels reordered, and all 8 transforms x 6 channel orders drawn."""
    import torch

    from toyworld.zoo import depth

    ts = depth._training_set(24, 0)
    d, m = ts["depth"], ts["masks"]
    # a "frame" whose channels are the depth map and two masks shows where each one went
    x = torch.stack([d, m[:, 0].float(), m[:, 1].float()], 1)
    xa, da, ma = depth.augment(x, d, m, torch.Generator().manual_seed(0))
    for b in range(len(x)):
        chans = sorted(xa[b].unbind(0), key=lambda c: -float(c.sum()))
        want = sorted([da[b], ma[b, 0].float(), ma[b, 1].float()], key=lambda c: -float(c.sum()))
        assert all(torch.equal(c, w) for c, w in zip(chans, want, strict=True)), b
    mean = (d[:, None] * m).sum((-1, -2)) / m.sum((-1, -2)).clamp_min(1)
    mean_a = (da[:, None] * ma).sum((-1, -2)) / ma.sum((-1, -2)).clamp_min(1)
    assert torch.allclose(mean, mean_a) and not torch.equal(da, d)
    # every pixel numbered, channel c offset by c * 10^4: the top-left pair of numbers names the
    # flip/turn, the offsets name the channel order
    pos = torch.arange(64 * 64, dtype=torch.float32).reshape(64, 64)
    n = 2000
    frame = (pos + torch.tensor([0.0, 1e4, 2e4]).reshape(3, 1, 1)).expand(n, 3, 64, 64)
    xb, db, _ = depth.augment(
        frame, pos.expand(n, 64, 64), torch.zeros(n, 3, 64, 64, dtype=torch.bool), torch.Generator()
    )
    turns = [(int(v[0, 0, 0] % 1e4), int(v[0, 0, 1] % 1e4)) for v in xb]
    orders = [tuple(int(v[c, 0, 0] // 1e4) for c in range(3)) for v in xb]
    assert turns == [(int(v[0, 0]), int(v[0, 1])) for v in db]
    assert len(set(turns)) == 8 and len(set(orders)) == 6 and len(set(zip(turns, orders, strict=True))) == 48


@needs["depth"]
def test_committed_depth_meets_bar() -> None:
    """The issue's bar on the recorded protocol: 254 occluding pairs of 300 held-out scenes."""
    from toyworld.zoo import depth

    res = depth.evaluate(TOY_DIR / "depth", n=300)
    assert res["occluding_pairs"] == 254 and res["order_acc_occluding"] >= depth.BAR, res


def test_toy_profile_lists_components() -> None:
    from recut.models import PROFILES

    comps = PROFILES["toy"].components
    for role in ("clip", "depth", "vae", "image", "video"):
        assert comps[role].startswith("models/toy/")


# --------------------------------------------------------------------------- quick recipes


def test_quick_recipes_write_loadable_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from diffusers import AutoencoderKL
    from transformers import CLIPModel, CLIPProcessor, CLIPTextModel, DPTForDepthEstimation

    from toyworld.zoo.recipes import _text_encoder_train

    assert {"tokenizer", "vae", "clip", "text_encoder", "depth"} <= set(RECIPES)
    assert main(["train", "tokenizer", "--quick", "--out", str(tmp_path / "tok")]) == 0
    assert main(["check", "tokenizer", "--out", str(tmp_path / "tok")]) == 0
    capsys.readouterr()
    for name in ("vae", "clip", "depth"):
        info = RECIPES[name].train(tmp_path / name, quick=True)
        assert info["quick"] and info["train_time_s"] > 0 and "passed" in info["metrics"]
        assert json.loads((tmp_path / name / "zoo_info.json").read_text())["recipe"] == name
    depth_info = json.loads((tmp_path / "depth" / "zoo_info.json").read_text())
    assert depth_info["ema_decay"] > 0 and "passed" in depth_info["metrics_live_weights"]
    AutoencoderKL.from_pretrained(str(tmp_path / "vae"))
    CLIPModel.from_pretrained(str(tmp_path / "clip"))
    CLIPProcessor.from_pretrained(str(tmp_path / "clip"))
    DPTForDepthEstimation.from_pretrained(str(tmp_path / "depth"))
    res = _text_encoder_train(tmp_path / "te", clip_dir=tmp_path / "clip")
    assert res["passed"], res
    CLIPTextModel.from_pretrained(str(tmp_path / "te"))


def _repo_imports(path: Path, root: Path) -> set[str]:
    """Repo-relative paths of the repo modules ``path`` imports anywhere in it (``toyworld.*``,
    ``engines.*``, ``recut.*``; ``from toyworld.zoo import t2i`` names ``toyworld/zoo/t2i.py``)."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            rel = name.replace(".", "/") + ".py"
            if name.startswith(("toyworld.", "engines.", "recut.")) and (root / rel).is_file():
                found.add(rel)
    return found


def _recipe_code(name: str, root: Path) -> set[str]:
    """The code a recipe's training runs: the modules its ``train`` function in
    ``toyworld/zoo/recipes.py`` imports (``from toyworld.zoo import X``, ``from toyworld import X``),
    and every repo module those import, transitively."""
    import ast

    tree = ast.parse((root / "toyworld/zoo/recipes.py").read_text())
    fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == RECIPES[name].train.__name__)
    todo = [
        f"{n.module.replace('.', '/')}/{a.name}.py"
        for n in ast.walk(fn)
        if isinstance(n, ast.ImportFrom) and n.module in ("toyworld", "toyworld.zoo")
        for a in n.names
    ]
    seen: set[str] = set()
    while todo:
        rel = todo.pop()
        if rel not in seen:
            seen.add(rel)
            todo.extend(_repo_imports(root / rel, root))
    return seen


def test_every_recipe_has_a_dvc_stage_on_the_budget_machine() -> None:
    """``dvc repro`` rebuilds the zoo: one ``zoo-<name>`` stage per recipe, run with the budget machine's
    two cores (``--threads 2``), out = the recipe's folder,
    deps = exactly the code its training runs (so an edit to any of it, and only that, retrains it) and
    the folders of the recipes it is trained from (so DVC runs them in order)."""
    import yaml

    root = TOY_DIR.parents[1]
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    assert {s for s in stages if s.startswith("zoo-")} == {f"zoo-{name}" for name in RECIPES}
    for name, r in RECIPES.items():
        st = stages[f"zoo-{name}"]
        assert st["cmd"] == f"recut zoo train {name} --threads 2", st["cmd"]
        # persist: DVC must not delete the committed folder before the cmd; `recut zoo train` replaces
        # it only with a model that meets its bar
        assert st["outs"] == [{r.folder.relative_to(root).as_posix(): {"cache": False, "persist": True}}]
        folders = {d for d in st["deps"] if d.startswith("models/")}
        assert folders == {RECIPES[up].folder.relative_to(root).as_posix() for up in r.depends_on}, name
        code = set(st["deps"]) - folders
        assert code == _recipe_code(name, root), (name, sorted(code ^ _recipe_code(name, root)))


def test_quick_needs_out() -> None:
    with pytest.raises(SystemExit):
        main(["train", "vae", "--quick"])


# --------------------------------------------------------------------------- judges


def test_judge_clean_renders_pass() -> None:
    clips = data.clips("heldout1", 40, frames=16)
    motion_ok = 0
    for c in clips:
        o = c.scene.objects[0]
        r = judge.judge_object(c.frames, o.colour, o.shape, o.motion, pan=c.scene.camera_pan)
        assert r["colour"] and r["shape"], (c.caption, r["shape_pred"])
        motion_ok += r["motion"]
        # judging the caption gives the same answer
        assert judge.judge_caption(c.frames, c.caption)[0]["motion"] == r["motion"]
    assert motion_ok / len(clips) >= 0.95


def test_judge_handmade_scenes_all_attributes() -> None:
    for shape in ("circle", "square", "triangle"):
        for motion in ("static", "left", "right", "up", "down", "circle", "wave"):
            sc = ToyScene(
                objects=[ToyObject(shape=shape, colour="red", motion=motion, speed=0.06, start=(0.5, 0.5))],
                background=ToyBackground(kind="stripes", colour="blue"),
                frames=16,
            )
            c = render(sc)
            r = judge.judge_object(c.frames, "red", shape, motion)
            assert r["all"], (shape, motion, r["shape_pred"], r["motion_pred"])


def test_judge_rejects_corrupted_frames() -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (12, 64, 64, 3), dtype=np.uint8)
    for colour in ("red", "green", "blue", "white"):
        assert not judge.judge_object(noise, colour, "circle", "static")["all"]
    sc = ToyScene(
        objects=[ToyObject(shape="square", colour="yellow", motion="right", speed=0.06)],
        background=ToyBackground(kind="gradient", colour="purple"),
        frames=12,
    )
    c = render(sc)
    assert judge.judge_object(c.frames, "yellow", "square", "right")["all"]
    assert not judge.judge_object(c.frames, "green", "square", "right")["colour"]  # wrong colour
    assert not judge.judge_object(c.frames, "yellow", "circle", "right")["shape"]  # wrong shape
    assert not judge.judge_object(c.frames[::-1], "yellow", "square", "right")["motion"]  # reversed
    blurred = np.full_like(c.frames, c.frames.reshape(-1, 3).mean(0).astype(np.uint8))
    assert not judge.judge_object(blurred, "yellow", "square", "right")["colour"]  # washed out
    frozen = np.repeat(c.frames[:1], len(c.frames), axis=0)
    assert not judge.judge_object(frozen, "yellow", "square", "right")["motion"]  # no motion


def test_judge_reconstruction_psnr() -> None:
    a = np.zeros((4, 8, 8, 3), np.uint8)
    assert judge.judge_reconstruction(a, a) == float("inf")
    b = a.copy()
    b[..., 0] = 10
    assert judge.judge_reconstruction(a, b) == pytest.approx(10 * np.log10(255**2 / (100 / 3)))
    with pytest.raises(ValueError):
        judge.judge_reconstruction(a, a[:2])
