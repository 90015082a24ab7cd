"""Model profiles: the toy-* profiles load offline; public ids never touch the network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from recut import models
from recut.models import PROFILES, ModelNotAvailable, availability, resolve


def _classes() -> dict[str, type]:
    from diffusers import AutoencoderKL, StableDiffusionPipeline, StableVideoDiffusionPipeline, TextToVideoSDPipeline
    from transformers import CLIPModel, DPTForDepthEstimation

    return {
        "toy-t2i": StableDiffusionPipeline,
        "toy-t2v": TextToVideoSDPipeline,
        "toy-clip": CLIPModel,
        "toy-vae": AutoencoderKL,
        "toy-depth": DPTForDepthEstimation,
        "sd15": StableDiffusionPipeline,
        "modelscope-t2v": TextToVideoSDPipeline,
        "zeroscope": TextToVideoSDPipeline,
        "dpt-large": DPTForDepthEstimation,
        "clip-vit-l14": CLIPModel,
        "svd": StableVideoDiffusionPipeline,
        "toy-svd": StableVideoDiffusionPipeline,
    }


TOY = ["toy-t2i", "toy-t2v", "toy-clip", "toy-vae", "toy-depth", "toy-svd"]
PUBLIC = {
    "sd15": "runwayml/stable-diffusion-v1-5",
    "modelscope-t2v": "damo-vilab/text-to-video-ms-1.7b",
    "zeroscope": "cerspense/zeroscope_v2_576w",
    "dpt-large": "Intel/dpt-large",
    "clip-vit-l14": "openai/clip-vit-large-patch14",
    "svd": "stabilityai/stable-video-diffusion-img2vid-xt",
}


def test_registry_has_the_toy_and_public_profiles() -> None:
    assert set(TOY) | set(PUBLIC) | {"toy", "tiny-random"} <= set(PROFILES)
    for name in TOY:
        assert PROFILES[name].local and availability(name) == "in repo"
    for name, repo in PUBLIC.items():
        assert not PROFILES[name].local and repo in PROFILES[name].components.values()
    # the combined `toy` profile (used by the example specs) still names every toy model
    toy = PROFILES["toy"].components
    for name in TOY:
        (folder,) = PROFILES[name].components.values()
        assert folder in toy.values()


@pytest.mark.parametrize("name", TOY)
def test_toy_profiles_load_offline(name: str, no_network) -> None:
    m = resolve(profile=name)
    (role,) = m.components
    obj = m.from_pretrained(_classes()[name], role)
    assert obj is not None and not no_network
    # identity is a content hash of the folder: stable, and distinct per model
    assert m.identity == resolve(profile=name).identity
    assert len({resolve(profile=n).identity for n in TOY}) == len(TOY)


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_public_profiles_fail_clearly_without_touching_the_network(name: str, no_network, tmp_path) -> None:
    m = resolve(profile=name)  # resolving never opens the weights
    roles = [r for r in m.components if m.components[r] == PUBLIC[name]]
    assert roles
    for role in roles:  # svd serves two roles (image2video, and revideo's base)
        with pytest.raises(ModelNotAvailable) as info:
            m.from_pretrained(_classes()[name], role, cache_dir=str(tmp_path))  # an empty cache
        msg = str(info.value)
        assert "not on this machine" in msg and PUBLIC[name] in msg and "huggingface-cli download" in msg
    assert no_network == []


def test_availability_reads_the_local_cache_only(monkeypatch, no_network) -> None:
    monkeypatch.setattr(models, "in_local_cache", lambda repo, revision=None: repo == "Intel/dpt-large")
    assert availability("dpt-large") == "in local cache"
    assert availability("svd") == "not on this machine"
    assert no_network == []


def test_cli_lists_profiles_with_availability() -> None:
    from typer.testing import CliRunner

    from recut.cli import app

    r = CliRunner().invoke(app, ["profiles"])
    assert r.exit_code == 0, r.output
    for name in TOY:
        assert f"{name} (in repo)" in r.stdout
    for name, repo in PUBLIC.items():
        assert f"{name} (hub id, local cache only)" in r.stdout and repo in r.stdout
    assert "vae=models/toy/vae; in repo" in r.stdout


def test_the_committed_toy_zoo_fits_its_size_budget() -> None:
    """Issue 3: the committed toy weights (``models/toy``) stay within 30 MB in all; the pipeline
    folders' ``vae/``, ``text_encoder/``, ``tokenizer/`` are symlinks and count once."""
    root = Path(models.__file__).resolve().parents[1] / "models" / "toy"
    scratch = (".training", ".work", ".below-bar", ".replaced", ".saving")  # gitignored: never committed
    files = [
        Path(d) / f
        for d, _, names in os.walk(root)  # os.walk skips linked folders
        if not any(part.endswith(scratch) for part in Path(d).relative_to(root).parts)
        for f in names
    ]
    weights = [p for p in files if p.suffix == ".safetensors" and not p.is_symlink()]
    total = sum(p.stat().st_size for p in files if not p.is_symlink())
    assert len(weights) >= 7  # vae, text encoders, clip, depth, both UNets
    assert total <= 30 * 1024 * 1024, f"models/toy holds {total / 2**20:.1f} MiB"
