"""The T2V's own text encoder (toyworld/zoo/motion_text.py) and how pipelines link it.

The toy CLIP's text tower hardly encodes which way an object moves (it was trained on single
frames); the T2V's encoder must, or no UNet can learn motion from it.  These tests pin the
labels it is trained on, the separation measure and its bar (the committed encoder passes, the
CLIP text tower fails), and the plumbing: a T2V pipeline folder links the encoder it was
trained with, and saving never deletes a component folder that lives in the output folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from toyworld import scene as toy  # noqa: E402
from toyworld.zoo import motion_text, t2i, t2v  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_labels_name_every_object_and_mark_absent_slots() -> None:
    scene = toy.ToyScene(
        objects=[
            toy.ToyObject(shape="square", colour="red", size="small", motion="left"),
            toy.ToyObject(shape="circle", colour="blue", motion="static"),
        ],
        background=toy.ToyBackground(kind="stripes", colour="yellow"),
        camera_pan="up",
    )
    lab = motion_text.labels(scene)
    assert set(lab) == set(motion_text.FIELDS)
    name = {f: motion_text.FIELDS[f][i] for f, i in lab.items()}
    assert (name["obj0_colour"], name["obj0_shape"], name["obj0_size"], name["obj0_motion"]) == (
        "red",
        "square",
        "small",
        "left",
    )
    assert (name["obj1_colour"], name["obj1_motion"]) == ("blue", "static")
    assert all(name[f"obj2_{a}"] == "none" for a in ("colour", "shape", "size", "motion"))
    assert (name["bg_kind"], name["bg_colour"], name["pan"]) == ("stripes", "yellow", "up")


def test_committed_encoder_carries_direction_and_the_clip_tower_does_not() -> None:
    """The bar separates the two: the CLIP text tower barely changes its end-of-text states when
    the direction word is swapped; the T2V's encoder does, and keeps the colour."""
    ours = motion_text.check(t2v.TEXT_ENCODER)
    assert ours["passed"], ours
    clip_tower = motion_text.check(motion_text.SOURCE)
    assert not clip_tower["passed"] and clip_tower["motion_eos_rel_change"] < motion_text.MIN_MOTION_CHANGE
    assert ours["motion_eos_rel_change"] > 5 * clip_tower["motion_eos_rel_change"]
    assert ours["colour_eos_rel_change"] >= motion_text.MIN_COLOUR_CHANGE


def test_quick_encoder_trains_and_a_t2v_links_it(tmp_path: Path) -> None:
    te_dir = tmp_path / "te"
    figs = motion_text.train(te_dir, steps=3, batch=8, n_captions=32, log=None)
    assert np.isfinite(figs["final_ce"]) and figs["steps"] == 3
    from transformers import CLIPTextModel

    te = CLIPTextModel.from_pretrained(te_dir)
    assert te.config.hidden_size == t2i.text_hidden_size(t2i.default_components())
    assert json.loads((te_dir / "zoo_info.json").read_text())["recipe"] == "t2v_text_encoder"

    out = tmp_path / "t2v"
    res = t2v.train(out, quick=True, text_encoder=te_dir, log=None)
    assert (out / "text_encoder").is_symlink() and (out / "text_encoder").resolve() == te_dir.resolve()
    assert (out / "vae").resolve() == (t2i.default_components() / "vae").resolve()
    assert res["components"]["text_encoder"] == str(te_dir)


def test_components_resolve_overrides_and_reject_bad_folders(tmp_path: Path) -> None:
    root = t2i.default_components()
    comp = t2i.Components(root, text_encoder=t2v.TEXT_ENCODER)
    assert comp / "text_encoder" == t2v.TEXT_ENCODER and comp / "vae" == root / "vae"
    assert t2i.Components(root, text_encoder=None) / "text_encoder" == root / "text_encoder"
    with pytest.raises(ValueError, match="unet"):
        t2i.Components(root, unet=root)
    with pytest.raises(FileNotFoundError, match=r"text_encoder folder .*no config\.json"):
        t2i.Components(root, text_encoder=tmp_path)


def test_saving_keeps_a_component_that_lives_in_the_output_folder(tmp_path: Path) -> None:
    """A pipeline folder may hold its own text encoder; saving into it links the others and leaves
    that folder (and its weights) alone rather than replacing it by a symlink to itself."""
    out = tmp_path / "pipe"
    (out / "text_encoder").mkdir(parents=True)
    for f in (t2v.TEXT_ENCODER).iterdir():
        (out / "text_encoder" / f.name).write_bytes(f.read_bytes())
    before = (out / "text_encoder" / "model.safetensors").read_bytes()
    unet = t2v.build_unet(t2i.text_hidden_size(t2i.default_components()), 16, quick=True)
    t2i.save_pipeline(out, unet, t2i.Components(t2i.default_components(), text_encoder=out / "text_encoder"), "X")
    assert not (out / "text_encoder").is_symlink()
    assert (out / "text_encoder" / "model.safetensors").read_bytes() == before
    assert (out / "tokenizer").is_symlink() and (out / "vae").is_symlink()


def test_command_lines_name_a_bad_folder_without_a_traceback(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        motion_text.main(["check", str(tmp_path)])
    assert exc.value.code == 2
    assert f"text encoder folder '{tmp_path}' has no config.json" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        t2v.main(["train", "--quick", "--out", str(tmp_path / "t2v"), "--text-encoder", str(tmp_path)])
    assert exc.value.code == 2
    assert f"text_encoder folder '{tmp_path}' has no config.json" in capsys.readouterr().err
    assert not (tmp_path / "t2v").exists()
