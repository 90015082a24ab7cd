"""The ``fullsize-random`` profile: public configs in the repo, seeded random weights built on first use.

At full size every config is instantiated on the meta device (no memory, no weights) and its parameter
count checked against the published model's. The build itself (draw, save, load through the engines'
``from_pretrained``, offline) runs on a shrunk copy of the configs: the same classes and block
structure with small channels, so the whole test takes seconds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from recut import fullsize
from recut.models import FULLSIZE_CONFIGS, PROFILES, REPO_ROOT, ResolvedModel, availability, resolve

#: Component -> parameters of the published model (diffusers/transformers count of the hub checkpoint).
PUBLISHED_PARAMETERS = {
    "sd/unet": 859_520_964,  # SD-1.5 UNet
    "sd/vae": 83_653_863,
    "sd/text_encoder": 123_060_480,  # CLIP ViT-L/14 text
    "modelscope/text_encoder": 340_387_840,  # OpenCLIP ViT-H/14 text, 23 layers (as SD-2's)
    "clip-vit-l14": 427_616_513,
    "svd/unet": 1_524_623_082,  # SVD-XT
    "svd/image_encoder": 632_076_800,  # CLIP ViT-H/14 vision + projection
}


@pytest.fixture
def offline(no_network, monkeypatch):
    """No connection (the shared ``no_network``) and the hub told it is offline."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return no_network


def _engine_class(name: str) -> Any:
    from engines.common.content import ContentProjection, EmbeddingPrior
    from engines.revideo.control import ControlModule

    return {"ContentProjection": ContentProjection, "EmbeddingPrior": EmbeddingPrior, "ControlModule": ControlModule}[
        name
    ]


def _on_meta(src: Path) -> Any:
    """The component of config folder ``src``, instantiated on the meta device."""
    lib, name = fullsize.component_class(src)
    _, cls = fullsize._resolve_class(src, _engine_class(name) if lib == "other" else None)
    with torch.device("meta"):
        if hasattr(cls, "config_class"):
            return cls._from_config(cls.config_class.from_pretrained(src))
        return cls.from_config(cls.load_config(src))


def _count(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------- the profile


def test_the_profile_resolves_without_building(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RECUT_FULLSIZE_DIR", str(tmp_path / "cache"))
    prof = PROFILES["fullsize-random"]
    assert prof.built_on_use and prof.local
    assert {"image", "video", "zeroscope", "clip", "depth", "gen1", "image2video", "revideo"} == set(prof.components)
    m = resolve(profile="fullsize-random")
    assert not (tmp_path / "cache").exists()  # resolving draws nothing
    assert m.dtype == "bfloat16" and m.torch_dtype("cpu") == torch.bfloat16
    assert resolve(profile="fullsize-random", dtype="float32").torch_dtype("cpu") == torch.float32
    assert m.identity == resolve(profile="fullsize-random").identity
    assert m.identity != resolve(profile="fullsize-random", dtype="float32").identity
    assert all(Path(loc).is_relative_to(tmp_path / "cache") for loc in m.components.values())
    assert availability("fullsize-random").startswith("configs in repo, weights built on first use")


def test_recut_profiles_lists_it(tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from recut.cli import app

    monkeypatch.setenv("RECUT_FULLSIZE_DIR", str(tmp_path / "cache"))
    result = CliRunner().invoke(app, ["profiles"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "fullsize-random" in text and "weights built on first use" in text, text
    assert not (tmp_path / "cache").exists()


def test_the_identity_follows_the_configs(tmp_path: Path) -> None:
    copy = tmp_path / "configs"
    shutil.copytree(FULLSIZE_CONFIGS, copy, symlinks=True)
    _relink_outside(copy)
    before = fullsize.config_digest(copy)
    assert before == fullsize.config_digest(FULLSIZE_CONFIGS)
    cfg = json.loads((copy / "sd" / "unet" / "config.json").read_text())
    (copy / "sd" / "unet" / "config.json").write_text(json.dumps({**cfg, "layers_per_block": 1}))
    assert fullsize.config_digest(copy) != before
    assert fullsize.config_digest(copy, seed=1) != fullsize.config_digest(copy)


@pytest.mark.parametrize("rel", sorted(PUBLISHED_PARAMETERS))
def test_the_configs_are_the_published_architectures(rel: str) -> None:
    """Each config builds its class at full size (on the meta device) with the published parameter count."""
    assert _count(_on_meta(FULLSIZE_CONFIGS / rel)) == PUBLISHED_PARAMETERS[rel]


def test_the_models_without_an_exact_published_count() -> None:
    """DPT-Large: 343M parameters (its model card). ModelScope's and zeroscope's UNet: diffusers'
    UNet3DConditionModel defaults, which diffusers took from ModelScope's config. SVD's VAE: SD's encoder
    with the temporal decoder."""
    from diffusers import UNet3DConditionModel

    assert round(_count(_on_meta(FULLSIZE_CONFIGS / "dpt-large")) / 1e6) == 343
    with torch.device("meta"):
        default = _count(UNet3DConditionModel())
    for rel in ("modelscope/unet", "zeroscope/unet"):
        assert _count(_on_meta(FULLSIZE_CONFIGS / rel)) == default
    svd_vae, sd_vae = _on_meta(FULLSIZE_CONFIGS / "svd" / "vae"), _on_meta(FULLSIZE_CONFIGS / "sd" / "vae")
    assert _count(svd_vae.encoder) == _count(sd_vae.encoder)


def test_the_derived_components_match_their_base() -> None:
    """Gen-1's UNet is ModelScope's plus the 8 structure channels of conv_in; ReVideo's control module is the
    encoder half of the SVD-XT UNet plus the condition encoders; the content projection feeds ModelScope's
    cross-attention from CLIP ViT-L/14's embedding."""
    gen1 = _on_meta(FULLSIZE_CONFIGS / "gen1" / "unet")
    base = _on_meta(FULLSIZE_CONFIGS / "modelscope" / "unet")
    assert gen1.conv_in.in_channels == base.conv_in.in_channels + 8
    assert _count(gen1) - _count(base) == 8 * base.conv_in.out_channels * 3 * 3
    control = _on_meta(FULLSIZE_CONFIGS / "revideo" / "control")
    svd = _on_meta(FULLSIZE_CONFIGS / "svd" / "unet")
    assert _count(svd) // 3 < _count(control) < _count(svd)
    assert control.config.unet_config["block_out_channels"] == list(svd.config.block_out_channels)
    proj = json.loads((FULLSIZE_CONFIGS / "gen1" / "content_projection" / "config.json").read_text())
    clip = json.loads((FULLSIZE_CONFIGS / "clip-vit-l14" / "config.json").read_text())
    assert proj["embed_dim"] == clip["projection_dim"]
    assert proj["cross_attention_dim"] == base.config.cross_attention_dim


def test_the_tokenizer_fits_the_text_encoders() -> None:
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(FULLSIZE_CONFIGS / "tokenizer")
    assert tok.model_max_length == 77
    for rel in ("sd/text_encoder", "modelscope/text_encoder"):
        cfg = json.loads((FULLSIZE_CONFIGS / rel / "config.json").read_text())
        assert len(tok) <= cfg["vocab_size"] and cfg["max_position_embeddings"] == tok.model_max_length
        # the published eos id 2 selects the legacy pooling (argmax id): the tokenizer's EOS is its largest id
        assert cfg["eos_token_id"] == 2 and tok.eos_token_id == len(tok) - 1


# --------------------------------------------------------------------------- building, on a shrunk copy

SMALL_SVD = {
    "block_out_channels": [32, 32, 32, 32],
    "num_attention_heads": [2, 2, 2, 2],
    "cross_attention_dim": 32,
    "addition_time_embed_dim": 8,
    "projection_class_embeddings_input_dim": 24,
    "layers_per_block": 1,
}
SMALL_TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2}
SMALL_VISION = {**SMALL_TEXT, "image_size": 56}
SMALL = {
    "UNet2DConditionModel": {
        "block_out_channels": [32, 32, 64, 64],
        "cross_attention_dim": 32,
        "layers_per_block": 1,
    },
    "UNet3DConditionModel": {
        "block_out_channels": [32, 32, 64, 64],
        "attention_head_dim": 8,
        "cross_attention_dim": 32,
        "layers_per_block": 1,
    },
    "UNetSpatioTemporalConditionModel": SMALL_SVD,
    "ControlModule": {"encoder_channels": [8, 8, 8]},
    "AutoencoderKL": {"block_out_channels": [32, 32, 32, 32], "layers_per_block": 1},
    "AutoencoderKLTemporalDecoder": {"block_out_channels": [32, 32, 32, 32], "layers_per_block": 1},
    "CLIPTextModel": {**SMALL_TEXT, "projection_dim": 32},
    "CLIPVisionModelWithProjection": {**SMALL_VISION, "projection_dim": 32},
    "DPTForDepthEstimation": {
        **SMALL_TEXT,
        "num_hidden_layers": 4,
        "backbone_out_indices": [0, 1, 2, 3],
        "neck_hidden_sizes": [8, 16, 16, 16],
        "fusion_hidden_size": 16,
    },
    "ContentProjection": {"embed_dim": 32, "cross_attention_dim": 32},
    "EmbeddingPrior": {"embed_dim": 32, "hidden": 64},
}


def _relink_outside(root: Path) -> None:
    """Links of the copy that point out of models/fullsize (the tokenizer) become copies of their targets."""
    for p in sorted(root.rglob("*")):
        if not p.is_symlink():
            continue
        target = (FULLSIZE_CONFIGS / p.relative_to(root)).resolve()
        if not target.is_relative_to(FULLSIZE_CONFIGS.resolve()):
            p.unlink()
            (shutil.copytree if target.is_dir() else shutil.copyfile)(target, p)


def shrunk_configs(dst: Path) -> Path:
    """A copy of models/fullsize with every model's channels shrunk (same classes, same block types)."""
    shutil.copytree(FULLSIZE_CONFIGS, dst, symlinks=True)
    _relink_outside(dst)
    for f in sorted(dst.rglob("config.json")):
        if f.parent.is_symlink() or f.is_symlink():
            continue
        cfg = json.loads(f.read_text())
        name = cfg.get("_class_name") or cfg["architectures"][0]
        if name == "CLIPModel":
            cfg["text_config"].update(SMALL["CLIPTextModel"])
            cfg["vision_config"].update(SMALL_VISION)
            cfg["projection_dim"] = 32
        else:
            cfg.update(SMALL[name])
        if name == "ControlModule":
            cfg["unet_config"].update(SMALL_SVD)
        f.write_text(json.dumps(cfg, indent=1))
    return dst


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("fullsize")
    configs = shrunk_configs(root / "configs")
    return configs, root / "cache"


def _model(small: tuple[Path, Path], dtype: str = "bfloat16") -> ResolvedModel:
    configs, cache = small
    folders = {
        r: (REPO_ROOT / loc).relative_to(FULLSIZE_CONFIGS) for r, loc in PROFILES["fullsize-random"].components.items()
    }
    comps = {role: str(cache / rel) for role, rel in folders.items()}
    return ResolvedModel("fullsize-small", comps, None, dtype, "test", {}, (), (str(configs), str(cache)))


def test_a_folder_builds_offline_and_loads_through_the_engines_path(small, offline) -> None:
    from diffusers import AutoencoderKL, UNet3DConditionModel
    from transformers import CLIPModel, CLIPProcessor, CLIPTextModel, DPTForDepthEstimation

    configs, cache = small
    model = _model(small)
    loc = Path(model.location("gen1"))  # builds every diffusers/transformers component of the folder
    assert (loc / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert (loc / "clip").is_symlink() and (loc / "clip" / "model.safetensors").is_file()
    assert (loc / "text_encoder").is_symlink() and (cache / "modelscope" / "text_encoder").is_dir()
    assert not (loc / "content_projection").exists()  # an engine's class: built when the engine loads it
    # only the engine's own classes are left, until the engine loads them
    assert fullsize.missing(configs, cache, "gen1") == ["gen1/content_projection", "gen1/prior"]
    # the committed config is the one in the cache (published values), the weights bfloat16
    assert (loc / "unet" / "config.json").read_bytes() == (configs / "gen1" / "unet" / "config.json").read_bytes()
    unet = model.from_pretrained(UNet3DConditionModel, "gen1", subfolder="unet")
    assert unet.conv_in.in_channels == 12
    te = model.from_pretrained(CLIPTextModel, "gen1", subfolder="text_encoder")
    assert next(te.parameters()).dtype == torch.float32  # the config's torch_dtype, as the hub checkpoint
    assert model.from_pretrained(AutoencoderKL, "gen1", subfolder="vae") is not None
    assert model.from_pretrained(CLIPModel, "gen1", subfolder="clip") is not None
    assert model.from_pretrained(CLIPProcessor, "gen1", subfolder="clip") is not None
    assert model.from_pretrained(DPTForDepthEstimation, "gen1", subfolder="depth") is not None
    assert not offline


def test_engine_classes_build_when_the_engine_loads_them(small, offline) -> None:
    from engines.gen1.engine import Gen1Engine
    from engines.revideo.engine import ReVideoEngine

    _, cache = small
    g = Gen1Engine(_model(small), "cpu")
    g.load()
    assert g.components.projection is not None and g.components.prior is not None
    assert (cache / "gen1" / "content_projection" / "diffusion_pytorch_model.safetensors").is_file()
    r = ReVideoEngine(_model(small), "cpu")
    r.load()
    assert r.components.control is not None
    assert r.components.base.unet.dtype == torch.bfloat16
    assert not offline


def test_the_weights_are_seeded(small, tmp_path: Path) -> None:
    configs, cache = small
    model = _model(small)
    model.location("image")
    other = fullsize.ensure_folder(configs, tmp_path / "again", "sd")
    for sub in ("unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
        assert (other / sub).read_bytes() == (cache / "sd" / sub).read_bytes(), sub
    # one seed per component path: ModelScope's and zeroscope's UNet share a config, not their weights
    assert fullsize.component_seed(0, "modelscope/unet") != fullsize.component_seed(0, "zeroscope/unet")


def test_a_race_leaves_one_whole_component(small, tmp_path: Path) -> None:
    """Two builders of one component: both end with the same complete folder (the later rename loses)."""
    configs, _ = small
    cache = tmp_path / "race"
    first = fullsize.ensure_component(configs, cache, "sd/vae")
    before = sorted(p.name for p in first.iterdir())
    # a second builder that did not see the folder: builds, loses the rename, discards its copy
    assert fullsize._build(configs / "sd" / "vae", cache / "sd" / "vae", "sd/vae", None, 0)
    assert sorted(p.name for p in (cache / "sd" / "vae").iterdir()) == before
    assert not [p for p in (cache / "sd").iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("example", ["videop2p-wordswap.yaml", "gen1-text.yaml", "revideo-trajectory.yaml"])
def test_validating_a_full_size_spec_builds_nothing(example: str, tmp_path: Path, monkeypatch) -> None:
    """`recut validate` reads the profile's configs and tokenizer where it needs them (frame-size
    multiples, token counts, components), never the weights it would build on first use."""
    from typer.testing import CliRunner

    from recut.cli import app

    monkeypatch.setenv("RECUT_FULLSIZE_DIR", str(tmp_path / "cache"))
    text = (REPO_ROOT / "specs" / "examples" / example).read_text()
    spec = REPO_ROOT / "specs" / "examples" / f"_fullsize-{example}"
    spec.write_text(text.replace("model: {profile: toy}", "model: {profile: fullsize-random}"))
    try:
        res = CliRunner().invoke(app, ["validate", str(spec)])
    finally:
        spec.unlink()
    assert "Traceback" not in res.output
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.safetensors"))
