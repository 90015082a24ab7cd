"""The gen1 recipe: trains through `recut zoo train` into a loadable Gen-1 folder, and resumes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from typer.testing import CliRunner

from recut.cli import app


def test_the_gen1_recipe_trains_a_loadable_model_and_resumes(prefect_api, tmp_path: Path) -> None:
    from diffusers import UNet3DConditionModel

    from engines.common.content import ContentProjection, EmbeddingPrior
    from toyworld.zoo import gen1

    r = CliRunner().invoke(app, ["zoo", "train", "gen1", "--quick", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    folder = tmp_path / "gen1"
    unet = UNet3DConditionModel.from_pretrained(folder / "unet")
    assert unet.config.in_channels == 12  # latents 4 + structure latent 4 + t_s embedding 4
    ContentProjection.from_pretrained(folder / "content_projection")
    EmbeddingPrior.from_pretrained(folder / "prior")
    for link in ("vae", "text_encoder", "tokenizer", "clip", "depth"):
        assert (folder / link / "config.json").exists() or (folder / link / "tokenizer_config.json").exists(), link
    info = json.loads((folder / "zoo_info.json").read_text())
    assert info["recipe"] == "gen1" and {"silhouette_rate", "colour_rate", "passed"} <= set(info["metrics"])
    # the checkpoint it left resumes where it stopped: a longer run trains only the new steps
    work = tmp_path / "gen1.training.work"
    assert json.loads((work / "checkpoint" / "state.json").read_text())["step"] == gen1.QUICK.steps
    longer = dataclasses.replace(gen1.QUICK, stage2_steps=gen1.QUICK.stage2_steps + 2)
    info = gen1.train(tmp_path / "gen1.training", quick=True, resume=True, recipe=longer)
    assert json.loads((work / "checkpoint" / "state.json").read_text())["step"] == gen1.QUICK.steps + 2
    assert info["resumed_from"] == gen1.QUICK.steps
