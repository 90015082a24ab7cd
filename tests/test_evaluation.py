"""Contextual metrics: CLIP scores (on a tiny random CLIP) and masks from toy truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engines.common.evaluation import EvalContext, keep_mask, load_clip
from engines.common.metrics import METRICS, evaluate_all
from recut.models import REPO_ROOT
from toyworld import scene as toy
from toyworld.metrics import edited_region_from_truth


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> str:
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    torch.manual_seed(0)
    tok = CLIPTokenizer.from_pretrained(REPO_ROOT / "models/tiny-random/sd/tokenizer")
    cfg = CLIPConfig(
        text_config={
            "vocab_size": tok.vocab_size + 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
        },
        vision_config={
            "image_size": 32,
            "patch_size": 8,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
        },
        projection_dim=16,
    )
    out = tmp_path_factory.mktemp("clip")
    CLIPModel(cfg).save_pretrained(out)
    ip = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=ip, tokenizer=tok).save_pretrained(out)
    return str(out)


def test_clip_metrics_follow_their_definitions(tiny_clip: str) -> None:
    frames = toy.render(
        toy.ToyScene(
            objects=[toy.ToyObject(shape="circle", colour="red", motion="right")], frames=6, width=32, height=32
        )
    ).frames
    ctx = EvalContext(frames, frames, "a red circle moving right", None, tiny_clip)
    names = ["clip_text", "clip_consistency_consecutive", "clip_consistency_all_pairs"]
    got = evaluate_all(names, ctx)
    emb = ctx.extras["frame_emb"]
    assert emb.shape[0] == 6 and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert got["clip_consistency_consecutive"] == pytest.approx(float((emb[1:] * emb[:-1]).sum(-1).mean()), abs=1e-6)
    pairs = [float(emb[i] @ emb[j]) for i in range(6) for j in range(i + 1, 6)]
    assert got["clip_consistency_all_pairs"] == pytest.approx(np.mean(pairs), abs=1e-6)
    assert -1 <= got["clip_text"] <= 1
    still = np.repeat(frames[:1], 6, axis=0)
    same = evaluate_all(names[1:], EvalContext(still, still, "x", None, tiny_clip))
    assert same["clip_consistency_consecutive"] == pytest.approx(1.0, abs=1e-5)
    assert same["clip_consistency_all_pairs"] == pytest.approx(1.0, abs=1e-5)
    assert load_clip(tiny_clip) is load_clip(tiny_clip)  # resident: loaded once per process


def test_clip_metrics_without_a_model_fail_clearly() -> None:
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match=r"evaluate\.clip"):
        evaluate_all(["clip_text"], EvalContext(frames, frames, "x"))


def _toy_pre(tmp_path: Path) -> tuple[Path, toy.ToyClip]:
    scene = toy.ToyScene(
        objects=[
            toy.ToyObject(shape="circle", colour="red", motion="right"),
            toy.ToyObject(shape="square", colour="yellow", size="small"),
        ],
        background=toy.ToyBackground(kind="plain", colour="blue"),
        frames=6,
    )
    clip = toy.render(scene)
    toy.write_clip(clip, tmp_path)
    return tmp_path, clip


def test_truth_mask_selects_only_the_edited_object(tmp_path: Path) -> None:
    pre, clip = _toy_pre(tmp_path)
    prompt = clip.caption.replace("red circle", "green circle")
    edited = edited_region_from_truth(pre, prompt)
    assert edited is not None
    assert np.array_equal(edited, clip.full_masks[:, 0])
    assert not edited_region_from_truth(pre, clip.caption).any()  # same prompt: nothing edited
    keep, source = keep_mask("auto", tmp_path / "no-sample", pre, prompt, clip.frames.shape[:3])
    assert source == "truth" and keep is not None
    assert not keep[clip.full_masks[:, 0]].any() and keep[clip.masks[:, 1]].all()


def test_masked_psnr_ignores_the_edited_region(tmp_path: Path) -> None:
    pre, clip = _toy_pre(tmp_path)
    out = clip.frames.copy()
    out[clip.full_masks[:, 0]] = (40, 180, 60)  # a perfect recolour of the circle
    keep, _ = keep_mask("truth", tmp_path / "none", pre, clip.caption.replace("red", "green"), out.shape[:3])
    got = evaluate_all(["masked_psnr", "psnr"], EvalContext(out, clip.frames, "", keep))
    assert got["masked_psnr"] == METRICS["psnr"].fn(clip.frames, clip.frames, None)  # untouched outside: capped
    assert got["psnr"] < 30


def test_engine_mask_wins_and_missing_masks_are_errors(tmp_path: Path) -> None:
    pre, clip = _toy_pre(tmp_path / "pre")
    sample = tmp_path / "sample"
    sample.mkdir()
    m = np.zeros(clip.frames.shape[:3], bool)
    m[:, :10, :10] = True
    np.save(sample / "edit_mask.npy", m)
    keep, source = keep_mask("auto", sample, pre, clip.caption, clip.frames.shape[:3])
    assert source == "engine" and keep is not None and not keep[:, :10, :10].any()
    with pytest.raises(ValueError, match="no truth mask"):
        keep_mask("truth", sample, tmp_path / "not-toy", "x", clip.frames.shape[:3])


def test_clip_metrics_take_frames_of_any_shape() -> None:
    """The toy CLIP's processor does not crop by its config; the embeddings crop to the model's input, so
    wide frames (72x24) and a square content image give embeddings, not a size error."""
    toy_clip = str(REPO_ROOT / "models" / "toy" / "clip")
    wide = toy.render(
        toy.ToyScene(objects=[toy.ToyObject(shape="square", colour="blue")], frames=3, width=72, height=24)
    ).frames
    got = evaluate_all(
        ["clip_text", "clip_consistency_consecutive"], EvalContext(wide, wide, "a blue square", None, toy_clip)
    )
    assert -1 <= got["clip_text"] <= 1 and got["clip_consistency_consecutive"] == pytest.approx(1.0, abs=1e-5)


def test_an_edit_that_covers_every_pixel_skips_the_masked_metrics(tmp_path: Path) -> None:
    """Nothing is left unedited: the masked metrics are skipped with the reason, the others still run."""
    pre, clip = _toy_pre(tmp_path / "pre")
    sample = tmp_path / "sample"
    sample.mkdir()
    np.save(sample / "edit_mask.npy", np.ones(clip.frames.shape[:3], bool))
    keep, source = keep_mask("engine", sample, pre, clip.caption, clip.frames.shape[:3])
    assert keep is None and source == "engine"
    got = evaluate_all(["masked_psnr", "psnr"], EvalContext(clip.frames, clip.frames, "", keep, keep_source=source))
    assert got["masked_psnr"].startswith("skipped: the engine mask of the edited region covers every pixel")
    assert isinstance(got["psnr"], float)
