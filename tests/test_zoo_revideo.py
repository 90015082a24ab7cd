"""The toy SVD and ReVideo recipes: quick runs write loadable folders, each stage starts from the previous
one, the last writes the engine's model folder, and a longer run resumes from the checkpoint."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from toyworld.zoo import revideo, svd
from toyworld.zoo._util import read_info

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """svd, then the three control stages, all quick, under one root (as `recut zoo train --out` lays them)."""
    root = tmp_path_factory.mktemp("zoo")
    svd.train(root / "svd", quick=True)
    for stage in revideo.STAGES:
        revideo.train(stage, root / revideo.RECIPE[stage], quick=True)
    return root


def test_the_toy_svd_starts_as_the_toy_t2i_frame_by_frame() -> None:
    """init_from_t2i: the spatial layers are the T2I's, and every branch the image model lacks starts at
    zero, so at step 0 a frame's output depends neither on the other frames nor on the first-frame latent."""
    from diffusers import UNet2DConditionModel

    unet = svd.build_unet(64)
    svd.init_from_t2i(unet)
    t2i_sd = UNet2DConditionModel.from_pretrained(svd.TOY / "t2i" / "unet").state_dict()
    sd = unet.state_dict()
    w = t2i_sd["down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight"]
    assert torch.equal(sd["down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight"], w)
    assert torch.equal(
        sd["up_blocks.1.resnets.0.spatial_res_block.conv1.weight"], t2i_sd["up_blocks.1.resnets.0.conv1.weight"]
    )
    assert torch.equal(sd["conv_in.weight"][:, :4], t2i_sd["conv_in.weight"]) and not sd["conv_in.weight"][:, 4:].any()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, svd.FRAMES, 8, 16, 16, generator=g)
    emb, ids = torch.randn(1, 1, 64, generator=g), torch.tensor([[6.0, 127.0, 0.02]])
    y = x.clone()
    y[:, 1:] = torch.randn(y[:, 1:].shape, generator=g)  # other frames changed
    y[:, :, 4:] = torch.randn(y[:, :, 4:].shape, generator=g)  # first-frame latent changed
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []  # (input, output) of every temporal branch
    temporal = [
        m for n, m in unet.named_modules() if n.endswith(("temporal_res_block", "temporal_transformer_blocks.0"))
    ]
    for m in temporal:
        m.register_forward_hook(lambda _m, args, out: seen.append((args[0], out)))
    with torch.no_grad():
        a = unet(x, torch.tensor([0.3]), encoder_hidden_states=emb, added_time_ids=ids).sample
        b = unet(y, torch.tensor([0.3]), encoder_hidden_states=emb, added_time_ids=ids).sample
    assert len(seen) == 2 * len(temporal) and all(torch.equal(i, o) for i, o in seen)  # each branch: identity
    torch.testing.assert_close(a[:, 0], b[:, 0], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(a[:, 1], b[:, 1])


def test_the_toy_svd_folder_is_an_svd_pipeline_layout(zoo: Path) -> None:
    index = json.loads((zoo / "svd" / "model_index.json").read_text())
    assert index["unet"] == ["diffusers", "UNetSpatioTemporalConditionModel"]
    c = svd.load(zoo / "svd")
    assert c.unet.config.in_channels == 2 * c.vae.config.latent_channels
    assert c.unet.config.cross_attention_dim == c.image_encoder.config.projection_dim
    info = read_info(zoo / "svd")
    assert info["metrics"]["scenes"] == 2 and "kept_rate" in info["metrics"]


def test_each_stage_trains_what_the_paper_says(zoo: Path) -> None:
    base = svd.load(zoo / "svd").unet.state_dict()
    motion = load_file(str(zoo / "revideo_motion" / "control" / "diffusion_pytorch_model.safetensors"))
    decouple = load_file(str(zoo / "revideo_decouple" / "control" / "diffusion_pytorch_model.safetensors"))
    # stage 1 starts from a copy of the base's encoder and trains the whole module
    changed = [k for k in motion if k.startswith("down_blocks.") and not torch.equal(motion[k], base[k])]
    assert changed
    # stage 3 (deblocking) changes only temporal K/V (module and base) and H
    final = load_file(str(zoo / "revideo" / "control" / "diffusion_pytorch_model.safetensors"))
    moved = {k for k in final if not torch.equal(final[k].float(), decouple[k].float().half().float())}
    assert moved and all(
        (".temporal_transformer_blocks." in k and (".to_k." in k or ".to_v." in k)) or k.startswith("safm.")
        for k in moved
    ), sorted(moved)[:5]
    kv = load_file(str(zoo / "revideo" / "base_kv.safetensors"))
    assert kv and all(".to_k." in k or ".to_v." in k for k in kv)
    assert any(not torch.equal(v.float(), base[k].half().float()) for k, v in kv.items())


def test_the_last_stage_writes_the_engines_model_folder(zoo: Path) -> None:
    from engines.revideo import ENGINE
    from recut.models import resolve

    folder = zoo / "revideo"
    for name in ("unet", "vae", "image_encoder", "feature_extractor", "scheduler"):
        assert (folder / name).is_symlink() and (folder / name).resolve().is_dir()
    engine = ENGINE(resolve(path=str(folder)))
    c = engine.components
    assert c.control is not None and c.frames == svd.FRAMES and c.multiple == 8
    scene = revideo.heldout_scenes(1)[0]
    case = revideo.make_case(scene, "trajectory", 0)
    out = revideo.run_case(c, case, steps=2, seed=0)
    assert out.shape == case.frames.shape and out.dtype == np.uint8
    row = revideo.measure(case, out)
    assert set(row) == {"mode", "trajectory_px", "kept", "unedited_psnr"}


def test_a_longer_run_resumes_from_the_checkpoint(zoo: Path) -> None:
    r = replace(revideo.default_recipe("motion", quick=True), steps=3)
    info = revideo.train("motion", zoo / "revideo_motion", recipe=r)
    assert info["resumed_from"] == 2


def test_held_out_cases_ask_for_what_each_mode_means() -> None:
    scene = revideo.heldout_scenes(1)[0]
    rec = revideo.make_case(scene, "recolour", 0)
    tra = revideo.make_case(scene, "trajectory", 0)
    assert rec.colour != scene.objects[0].colour and tra.colour == scene.objects[0].colour
    assert not np.array_equal(rec.first, rec.frames[0]) and np.array_equal(tra.first, tra.frames[0])
    # the drawn path leaves the object's own, and the area covers both
    assert np.abs(tra.path[-1] - tra.path[0]).max() > 5
    x, y = np.rint(tra.path[-1]).astype(int)
    assert tra.area[-1, y, x] and tra.motion.any() and rec.motion.any()
