"""`recut import`: Tune-A-Video / Video-P2P configs and LOVEU-TGVE CSVs become edit specs.

The configs are written here in the official repositories' documented format (showlab/Tune-A-Video's
``configs/*.yaml``, Video-P2P's ``*-tune.yaml`` and ``*-p2p.yaml``), with small clips so that the
written specs can be validated with :func:`recut.spec.load_spec`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from recut.cli import app
from recut.importers import (
    ImportProblem,
    LoveuOptions,
    loveu_column,
    loveu_specs,
    map_model,
    tune_a_video_spec,
)
from recut.importers import _Report as Report
from recut.spec import load_spec
from recut.video import make_test_frames, make_test_video, write_image

# Tune-A-Video's configs/man-skiing.yaml layout (smaller clip: 4 frames of 64x64, every 2nd frame)
TAV_CONFIG = """\
pretrained_model_path: "./checkpoints/stable-diffusion-v1-4"
output_dir: "./outputs/man-skiing"

train_data:
  video_path: "data/man-skiing.mp4"
  prompt: "a man is skiing"
  n_sample_frames: 4
  width: 64
  height: 64
  sample_start_idx: 1
  sample_frame_rate: 2

validation_data:
  prompts:
    - "mickey mouse is skiing on the snow"
    - "spider man is skiing on the beach, cartoon style"
  video_length: 4
  width: 64
  height: 64
  num_inference_steps: 40
  guidance_scale: 12.5
  use_inv_latent: True
  num_inv_steps: 40

learning_rate: 3e-5
train_batch_size: 1
max_train_steps: 300
checkpointing_steps: 1000
validation_steps: 100
trainable_modules:
  - "attn1.to_q"
  - "attn2.to_q"
  - "attn_temp"

seed: 33
mixed_precision: fp16
use_8bit_adam: False
gradient_checkpointing: True
enable_xformers_memory_efficient_attention: True
"""

# Video-P2P's configs/car-drive-p2p.yaml layout, with the p2p keys run_videop2p.py also takes
P2P_CONFIG = """\
pretrained_model_path: "./outputs/car-drive"
image_path: "./data/car"
prompt: "a car is driving on the road"
prompts:
  - "a car is driving on the road"
  - "a car is driving on the lane"
blend_word:
  - 'road'
  - 'lane'
eq_params:
  words:
    - "lane"
  values:
    - 2
save_name: "lane"
is_word_swap: True
cross_replace_steps: 0.4
self_replace_steps: 0.3
"""

# Video-P2P's configs/car-drive-tune.yaml layout (its tuning config is Tune-A-Video's format)
P2P_TUNE_CONFIG = """\
pretrained_model_path: "runwayml/stable-diffusion-v1-5"
output_dir: "./outputs/car-drive"

train_data:
  video_path: "./data/car"
  prompt: "a car is driving on the road"
  n_sample_frames: 6
  width: 64
  height: 64
  sample_start_idx: 0
  sample_frame_rate: 1

validation_data:
  prompts:
    - "a car is driving on the lane"
  video_length: 6
  width: 64
  height: 64
  num_inference_steps: 50
  guidance_scale: 12.5
  use_inv_latent: True
  num_inv_steps: 50

learning_rate: 3e-5
train_batch_size: 1
max_train_steps: 500
checkpointing_steps: 1000
validation_steps: 500
trainable_modules:
  - "attn1.to_q"
  - "attn2.to_q"
  - "attn_temp"

seed: 33
mixed_precision: fp16
use_8bit_adam: False
gradient_checkpointing: True
enable_xformers_memory_efficient_attention: True
"""

LOVEU_CSV = (
    "Video name,Our GT caption,Style Change Caption,Object Change Caption,Background Change Caption,"
    "Multiple Changes Caption\n"
    "DAVIS_480p,,,,,\n"
    'blackswan,a black swan swimming in a pond,"a black swan swimming in a pond, Van Gogh style",'
    'a white duck swimming in a pond,a black swan swimming in the ocean,"a white duck swimming in the ocean, '
    'cartoon style"\n'
    ",,,,,\n"
    "youtube_480p,,,,,\n"
    'bike,a man rides a bike,"a man rides a bike, anime style",a robot rides a bike,a man rides a bike on the '
    "moon,\n"
)


def _tav() -> dict:
    return yaml.safe_load(TAV_CONFIG)


def _p2p() -> dict:
    return yaml.safe_load(P2P_CONFIG)


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.delenv("RECUT_ROOT", raising=False)
    monkeypatch.delenv("RECUT_DEBUG", raising=False)


@pytest.fixture
def proj(tmp_path, monkeypatch) -> Path:
    """A project laid out like the official repositories: configs/, data/ (a clip and a frame folder)."""
    root = tmp_path / "proj"
    (root / ".git").mkdir(parents=True)
    (root / "configs").mkdir()
    (root / "data" / "car").mkdir(parents=True)
    make_test_video(root / "data" / "man-skiing.mp4", frames=8, width=64, height=64, fps=8)
    for i, frame in enumerate(make_test_frames(8, 64, 64)):
        write_image(root / "data" / "car" / f"{i + 1}.jpg", frame)
    (root / "configs" / "man-skiing.yaml").write_text(TAV_CONFIG)
    (root / "configs" / "car-drive-p2p.yaml").write_text(P2P_CONFIG)
    (root / "configs" / "car-drive-tune.yaml").write_text(P2P_TUNE_CONFIG)
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *args: str):
    result = runner.invoke(app, ["import", *args])
    assert "Traceback" not in result.output
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), repr(result.exception)
    return result


# ------------------------------------------------------------------ Tune-A-Video: the mapping


def test_tune_a_video_keys_map_to_the_spec() -> None:
    imp = tune_a_video_spec([("man-skiing.yaml", _tav())])
    s = imp.spec
    assert s["method"] == "videop2p"
    # pretrained_model_path: a checkout of SD 1.4, which has no profile: its hub id, with a warning
    assert s["model"] == {"repo": "CompVis/stable-diffusion-v1-4", "dtype": "float16"}
    assert s["input"] == {
        "video": "data/man-skiing.mp4",
        "frames": {"start": 1, "count": 4, "stride": 2},
        "size": {"width": 64, "height": 64, "mode": "stretch"},
    }
    assert s["seed"] == 33
    p = s["params"]
    assert p["source_prompt"] == "a man is skiing"
    assert p["finetune"] == {"steps": 300, "lr": 3e-5, "trainable": ["attn1.to_q", "attn2.to_q", "attn_temp"]}
    assert isinstance(p["finetune"]["lr"], float)  # PyYAML reads `3e-5` as a string
    assert p["guidance_scale"] == 12.5
    assert p["inversion"] == {"steps": 40, "null_text": "fast"}
    # Tune-A-Video's sampling: no attention control, sparse-causal frame attention, the DDIM-inverted latent
    assert p["mode"] == "none"
    assert p["frame_attention"] == "sparse_causal"
    assert [e["prompt"] for e in s["edits"]] == [
        "mickey mouse is skiing on the snow",
        "spider man is skiing on the beach, cartoon style",
    ]
    names = [e["name"] for e in s["edits"]]
    assert names == ["mickey-mouse-is-skiing-on-the-snow", "spider-man-is-skiing-on-the-beach"]
    text = "\n".join(imp.warnings)
    assert "pretrained_model_path" in text and "CompVis/stable-diffusion-v1-4" in text
    for key in ("output_dir", "train_batch_size", "checkpointing_steps", "validation_steps", "use_8bit_adam"):
        assert key in text, key  # known keys with no counterpart are reported, not dropped silently


def test_unknown_keys_are_reported_each_by_name() -> None:
    cfg = _tav()
    cfg["my_scheduler"] = "cosine"
    cfg["train_data"]["crop"] = True
    cfg["validation_data"]["eta"] = 0.0
    cfg["adam_weight_decay"] = 0.01  # known, but recut's finetune uses 0
    imp = tune_a_video_spec([("c.yaml", cfg)])
    w = imp.warnings
    assert "c.yaml: my_scheduler: unknown key, not imported" in w
    assert "c.yaml: train_data.crop: unknown key, not imported" in w
    assert "c.yaml: validation_data.eta: unknown key, not imported" in w
    assert any(x.startswith("c.yaml: adam_weight_decay: 0.01 is not imported") for x in w)


def test_tune_a_video_differences_are_reported() -> None:
    cfg = _tav()
    cfg["validation_data"].update(use_inv_latent=False, num_inv_steps=20, video_length=8)
    w = "\n".join(tune_a_video_spec([("c.yaml", cfg)]).warnings)
    assert "validation_data.use_inv_latent" in w
    assert "validation_data.num_inv_steps: 20 differs" in w
    assert "validation_data.video_length: 8 differs" in w


def test_tune_a_video_defaults_fill_missing_optional_keys() -> None:
    cfg = {
        "pretrained_model_path": "runwayml/stable-diffusion-v1-5",
        "train_data": {"video_path": "v.mp4", "prompt": "a dog runs"},
        "validation_data": {"prompts": ["a cat runs", "a cat runs"]},
    }
    imp = tune_a_video_spec([("c.yaml", cfg)])
    s = imp.spec
    assert s["model"] == {"profile": "sd15"}  # a hub id a profile holds: no warning
    assert imp.warnings == []
    assert s["input"]["frames"] == {"start": 0, "count": 8, "stride": 1}  # TuneAVideoDataset's defaults
    assert s["input"]["size"] == {"width": 512, "height": 512, "mode": "stretch"}
    assert s["params"]["finetune"] == {"steps": 500, "lr": 3e-5}
    assert s["params"]["guidance_scale"] == 12.5 and s["params"]["inversion"]["steps"] == 50
    assert [e["name"] for e in s["edits"]] == ["a-cat-runs", "a-cat-runs-2"]


@pytest.mark.parametrize(
    ("value", "model", "warned"),
    [
        ("runwayml/stable-diffusion-v1-5", {"profile": "sd15"}, False),
        ("stable-diffusion-v1-5/stable-diffusion-v1-5", {"profile": "sd15"}, False),
        ("sd15", {"profile": "sd15"}, False),
        ("/data/stable-diffusion/stable-diffusion-v1-5", {"profile": "sd15"}, True),
        ("CompVis/stable-diffusion-v1-4", {"repo": "CompVis/stable-diffusion-v1-4"}, True),
        ("checkpoints/stable-diffusion-v1-4", {"repo": "CompVis/stable-diffusion-v1-4"}, True),
        ("someone/custom-sd", {"repo": "someone/custom-sd"}, True),
        ("./my-weights", {"path": "./my-weights"}, True),
    ],
)
def test_model_ids_map_to_profiles_where_one_exists(value: str, model: dict, warned: bool) -> None:
    got, _, note = map_model(value, Report("c.yaml", []), "pretrained_model_path")
    assert got == model
    assert bool(note) == warned


# ------------------------------------------------------------------ Video-P2P: the mapping


def test_video_p2p_keys_map_to_videop2p_params() -> None:
    imp = tune_a_video_spec([("car-drive-p2p.yaml", _p2p())])
    s = imp.spec
    p = s["params"]
    assert p["mode"] == "replace"  # is_word_swap: True
    assert p["cross_replace"] == 0.4 and p["self_replace"] == 0.3
    assert p["blend"] == {"source_words": ["road"], "target_words": ["lane"], "threshold": 0.3, "start": 0.2}
    assert p["equalizer"] == {"lane": 2.0}
    assert p["source_prompt"] == "a car is driving on the road"
    assert p["frame_attention"] == "first" and p["guidance"] == "decoupled"
    assert p["inversion"] == {"steps": 50, "null_text": "shared"}
    assert p["guidance_scale"] == 7.5  # run_videop2p.py's GUIDANCE_SCALE
    assert s["edits"] == [{"name": "lane", "prompt": "a car is driving on the lane"}]  # save_name
    # image_path: the frame folder, first video_len (8) frames, centre-cropped to 512x512
    assert s["input"] == {
        "video": "./data/car",
        "frames": {"start": 0, "count": 8, "stride": 1},
        "size": {"width": 512, "height": 512, "mode": "crop"},
    }
    # the p2p config's model is the tuned output: recut tunes from SD 1.5 itself, and says so
    assert s["model"] == {"profile": "sd15"}
    assert any("pretrained_model_path" in w and "tuning" in w for w in imp.warnings)


def test_video_p2p_defaults_and_refine() -> None:
    cfg = _p2p()
    for k in ("cross_replace_steps", "self_replace_steps", "blend_word", "eq_params"):
        del cfg[k]
    cfg.update(is_word_swap=False, fast=True, prompts=[cfg["prompt"], "a red car is driving on the road"])
    p = tune_a_video_spec([("p.yaml", cfg)]).spec["params"]
    assert p["mode"] == "refine"
    assert (p["cross_replace"], p["self_replace"]) == (0.2, 0.5)  # run_videop2p.main's defaults
    assert "blend" not in p and "equalizer" not in p
    assert p["inversion"]["null_text"] == "fast"


def test_cross_replace_as_dict_and_range() -> None:
    cfg = _p2p()
    cfg["cross_replace_steps"] = {"default_": 0.6}
    cfg["self_replace_steps"] = [0.0, 0.7]
    p = tune_a_video_spec([("p.yaml", cfg)]).spec["params"]
    assert (p["cross_replace"], p["self_replace"]) == (0.6, 0.7)


def test_tuning_and_p2p_configs_together() -> None:
    tune = yaml.safe_load(P2P_TUNE_CONFIG)
    imp = tune_a_video_spec([("car-drive-p2p.yaml", _p2p()), ("car-drive-tune.yaml", tune)])
    s = imp.spec
    assert s["model"] == {"profile": "sd15", "dtype": "float16"}  # the tuning config's base model
    assert s["input"]["video"] == "./data/car" and s["input"]["frames"]["count"] == 6
    assert s["params"]["finetune"]["steps"] == 500
    assert s["params"]["frame_attention"] == "first"  # Video-P2P, not Tune-A-Video's sparse-causal
    assert s["params"]["mode"] == "replace"
    assert [e["prompt"] for e in s["edits"]] == ["a car is driving on the lane"]
    w = "\n".join(imp.warnings)
    assert "car-drive-tune.yaml: validation_data:" in w  # tuning previews, not the edits
    assert "car-drive-p2p.yaml: pretrained_model_path:" in w  # the tuned output, not used


def test_one_file_with_both_parts() -> None:
    cfg = {**yaml.safe_load(P2P_TUNE_CONFIG), **{k: v for k, v in _p2p().items() if k != "pretrained_model_path"}}
    imp = tune_a_video_spec([("both.yaml", cfg)])
    assert imp.spec["params"]["mode"] == "replace"
    assert imp.spec["model"]["profile"] == "sd15"
    assert not any("unknown key" in w for w in imp.warnings)


@pytest.mark.parametrize(
    ("mutate", "key", "message"),
    [
        (lambda c: c.pop("pretrained_model_path"), "pretrained_model_path", "missing (required)"),
        (lambda c: c["train_data"].pop("video_path"), "train_data.video_path", "missing (required)"),
        (lambda c: c["train_data"].pop("prompt"), "train_data.prompt", "missing (required)"),
        (lambda c: c["validation_data"].pop("prompts"), "validation_data.prompts", "missing (required)"),
        (lambda c: c.pop("validation_data"), "validation_data", "missing"),
        (lambda c: c["train_data"].update(n_sample_frames="many"), "train_data.n_sample_frames", "expected a number"),
        (lambda c: c.update(train_data=["x"]), "train_data", "expected a mapping"),
        (lambda c: c.update(learning_rate=True), "learning_rate", "expected a number"),
    ],
)
def test_bad_tune_a_video_config(mutate, key: str, message: str) -> None:
    cfg = _tav()
    mutate(cfg)
    with pytest.raises(ImportProblem) as exc:
        tune_a_video_spec([("c.yaml", cfg)])
    assert exc.value.key == key
    assert message in exc.value.message


def test_bad_p2p_config() -> None:
    cfg = _p2p()
    cfg["prompts"] = ["only the source"]
    with pytest.raises(ImportProblem, match="prompts: needs the source prompt and at least one target"):
        tune_a_video_spec([("p.yaml", cfg)])
    cfg = _p2p()
    cfg["eq_params"] = {"words": ["lane"], "values": [2, 3]}
    with pytest.raises(ImportProblem, match=r"eq_params\.values: 2 values for 1 words"):
        tune_a_video_spec([("p.yaml", cfg)])
    with pytest.raises(ImportProblem, match="neither a Tune-A-Video config"):
        tune_a_video_spec([("x.yaml", {"foo": 1})])


# ------------------------------------------------------------------ the CLI, end to end


def test_cli_tune_a_video_writes_a_spec_that_validates(runner, proj) -> None:
    cfg = proj / "configs" / "man-skiing.yaml"
    cfg.write_text(TAV_CONFIG + "my_extra_key: 1\n")
    r = invoke(runner, "tune-a-video", "configs/man-skiing.yaml")
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == "wrote specs/man-skiing.yaml"
    assert "warning: configs/man-skiing.yaml: my_extra_key: unknown key, not imported" in r.stderr
    assert "output_dir" in r.stderr
    out = proj / "specs" / "man-skiing.yaml"
    text = out.read_text()
    assert "# warning: configs/man-skiing.yaml: my_extra_key" in text  # the reasons travel with the spec
    spec = load_spec(out)  # recut's own validation, media opened
    assert spec.method == "videop2p"
    assert spec.input.video == proj / "data" / "man-skiing.mp4"
    assert (spec.input.frames.start, spec.input.frames.count, spec.input.frames.stride) == (1, 4, 2)
    assert spec.model.repo == "CompVis/stable-diffusion-v1-4"
    assert spec.params.finetune.lr == 3e-5
    assert yaml.safe_load(text)["input"]["video"] == "../data/man-skiing.mp4"  # relative to the spec
    # a second import does not overwrite without --force
    r = invoke(runner, "tune-a-video", "configs/man-skiing.yaml")
    assert r.exit_code == 2
    assert "specs/man-skiing.yaml: exists; pass --force" in r.stderr
    r = invoke(runner, "tune-a-video", "configs/man-skiing.yaml", "--force", "--out", "specs/other/ski.yaml")
    assert r.exit_code == 0, r.output
    load_spec(proj / "specs" / "other" / "ski.yaml")


def test_cli_video_p2p_frame_folder_becomes_images(runner, proj) -> None:
    cfg = yaml.safe_load(P2P_CONFIG)
    cfg["video_len"] = 6
    (proj / "configs" / "car-drive-p2p.yaml").write_text(yaml.safe_dump(cfg))
    r = invoke(runner, "tune-a-video", "configs/car-drive-p2p.yaml", "--out", "specs/car.yaml")
    assert r.exit_code == 0, r.output
    spec = load_spec(proj / "specs" / "car.yaml")
    assert spec.input.images == [proj / "data" / "car" / f"{i}.jpg" for i in range(1, 7)]
    assert spec.params.mode == "replace" and spec.params.equalizer == {"lane": 2.0}
    assert spec.edit_names() == ["lane"]


def test_cli_tuning_and_p2p_configs(runner, proj) -> None:
    r = invoke(runner, "tune-a-video", "configs/car-drive-tune.yaml", "configs/car-drive-p2p.yaml")
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == "wrote specs/car-drive-p2p.yaml"
    spec = load_spec(proj / "specs" / "car-drive-p2p.yaml")
    assert len(spec.input.images) == 6 and spec.model.profile == "sd15"


def test_cli_missing_video_still_writes_and_warns(runner, proj) -> None:
    (proj / "data" / "man-skiing.mp4").unlink()
    r = invoke(runner, "tune-a-video", "configs/man-skiing.yaml")
    assert r.exit_code == 0, r.output
    assert "input.video: 'data/man-skiing.mp4' was not found" in r.stderr
    assert "does not validate until that file exists" in r.stderr
    out = proj / "specs" / "man-skiing.yaml"
    load_spec(out, check_files=False)  # right in every other way
    # --video gives the clip
    (proj / "clips").mkdir()
    clip = make_test_video(proj / "clips" / "ski.mp4", frames=8, width=64, height=64)
    r = invoke(runner, "tune-a-video", "configs/man-skiing.yaml", "--force", "--video", "clips/ski.mp4")
    assert r.exit_code == 0, r.output
    assert "not found" not in r.stderr
    assert load_spec(out).input.video == clip


def test_cli_media_outside_the_project_is_allowed_with_a_warning(runner, proj, tmp_path) -> None:
    (tmp_path / "elsewhere").mkdir()
    outside = make_test_video(tmp_path / "elsewhere" / "clip.mp4", frames=8, width=64, height=64)
    r = invoke(runner, "tune-a-video", "configs/man-skiing.yaml", "--video", str(outside))
    assert r.exit_code == 0, r.output
    assert "outside the spec's project root" in r.stderr
    spec = load_spec(proj / "specs" / "man-skiing.yaml")
    assert spec.allow_outside_root and spec.input.video == outside


def test_cli_values_that_make_no_valid_spec_exit_2(runner, proj) -> None:
    cfg = yaml.safe_load(TAV_CONFIG)
    cfg["validation_data"]["guidance_scale"] = 0.5  # recut's guidance_scale is >= 1
    (proj / "configs" / "low.yaml").write_text(yaml.safe_dump(cfg))
    r = invoke(runner, "tune-a-video", "configs/low.yaml")
    assert r.exit_code == 2
    assert "params.guidance_scale" in r.stderr
    assert "1 problem in the written spec" in r.stderr
    assert (proj / "specs" / "low.yaml").exists()  # written, so it can be fixed by hand


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.yaml", None, "configs/missing.yaml: file not found"),
        ("bad.yaml", "train_data: [unclosed\n", "configs/bad.yaml: invalid YAML"),
        ("list.yaml", "- a\n- b\n", "configs/list.yaml: expected a YAML mapping"),
        ("none.yaml", "foo: 1\n", "configs/none.yaml: neither a Tune-A-Video config"),
        (
            "noprompt.yaml",
            TAV_CONFIG.replace('  prompt: "a man is skiing"\n', ""),
            "configs/noprompt.yaml: train_data.prompt: missing (required)",
        ),
    ],
)
def test_cli_bad_config_one_line_exit_2(runner, proj, name: str, content: str | None, message: str) -> None:
    if content is not None:
        (proj / "configs" / name).write_text(content)
    r = invoke(runner, "tune-a-video", f"configs/{name}")
    assert r.exit_code == 2
    assert r.stderr.startswith(f"error: {message}")
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (proj / "specs").exists()


def test_import_of_the_cli_stays_light() -> None:
    code = "import recut.cli, sys; print('torch' in sys.modules, 'diffusers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


# ------------------------------------------------------------------ LOVEU-TGVE


@pytest.mark.parametrize(
    ("header", "column"),
    [
        ("Video name", "video"),
        ("video_name", "video"),
        ("VIDEO", "video"),
        ("Our GT caption", "caption"),
        ("original caption", "caption"),
        ("Source prompt", "caption"),
        ("Source", None),
        ("Style Change Caption", "style"),
        ("style  change   caption", "style"),
        ("Object", "object"),
        ("background_change", "background"),
        ("Multiple Changes Caption", "multiple"),
        ("multiple-changes", "multiple"),
        ("Notes", None),
    ],
)
def test_loveu_column_variants(header: str, column: str | None) -> None:
    assert loveu_column(header) == column


def test_loveu_rows_become_specs_with_four_edits() -> None:
    rows = [line.split(",") for line in ["DAVIS_480p,,,,,,", "swan,a swan swims,s1,o1,b1,m1,x", ",,,,,,"]]
    header = ["video_name", "ORIGINAL CAPTION", "style", "object", "background", "multiple changes", "Source"]
    specs = loveu_specs(header, rows, "d.csv", LoveuOptions(frames=8, size=256))
    assert len(specs) == 1
    s = specs[0].spec
    assert specs[0].name == "DAVIS_480p/swan.yaml"
    assert s["method"] == "videop2p"
    assert s["params"]["source_prompt"] == "a swan swims"
    assert s["params"]["mode"] == "none"  # the Tune-A-Video baseline
    assert s["edits"] == [
        {"name": "style", "prompt": "s1"},
        {"name": "object", "prompt": "o1"},
        {"name": "background", "prompt": "b1"},
        {"name": "multiple", "prompt": "m1"},
    ]
    assert s["input"]["video"] == "DAVIS_480p/480p_videos/swan.mp4"
    assert s["input"]["frames"] == {"start": 0, "count": 8, "stride": 1}
    assert s["input"]["size"] == {"width": 256, "height": 256, "mode": "stretch"}
    assert s["model"] == {"profile": "sd15"}
    assert "d.csv: column 'Source': unknown column, not imported" in specs[0].warnings


def test_loveu_csv_without_the_needed_columns() -> None:
    with pytest.raises(ImportProblem, match=r"missing column\(s\): caption \('Our GT caption'\)"):
        loveu_specs(["Video name", "Style", "Object", "Background", "Multiple"], [], "d.csv")


def test_cli_loveu_end_to_end(runner, proj) -> None:
    data = proj / "loveu"
    (data / "DAVIS_480p" / "480p_videos").mkdir(parents=True)
    make_test_video(data / "DAVIS_480p" / "480p_videos" / "blackswan.mp4", frames=8, width=64, height=64)
    frames = data / "youtube_480p" / "480p_frames" / "bike"
    frames.mkdir(parents=True)
    for i, frame in enumerate(make_test_frames(6, 64, 64)):
        write_image(frames / f"{i:05d}.jpg", frame)
    (data / "LOVEU-TGVE-2023_Dataset.csv").write_text(LOVEU_CSV)
    r = invoke(runner, "loveu", "loveu/LOVEU-TGVE-2023_Dataset.csv", "--frames", "4", "--size", "64")
    assert r.exit_code == 0, r.output
    assert "wrote specs/loveu/DAVIS_480p/blackswan.yaml" in r.stdout
    assert "wrote specs/loveu/youtube_480p/bike.yaml" in r.stdout
    assert "2 specs in specs/loveu" in r.stdout
    assert "line 6: video 'bike' has no multiple prompt" in r.stderr
    swan = load_spec(proj / "specs" / "loveu" / "DAVIS_480p" / "blackswan.yaml")
    assert swan.edit_names() == ["style", "object", "background", "multiple"]
    assert swan.params.source_prompt == "a black swan swimming in a pond"
    assert swan.input.frames.count == 4
    bike = load_spec(proj / "specs" / "loveu" / "youtube_480p" / "bike.yaml")
    assert bike.edit_names() == ["style", "object", "background"]
    assert bike.input.images == [frames / f"{i:05d}.jpg" for i in range(4)]


def test_cli_loveu_missing_videos_and_bad_csv(runner, proj) -> None:
    (proj / "d.csv").write_text(LOVEU_CSV)
    r = invoke(runner, "loveu", "d.csv", "--out-dir", "out", "--videos", "nowhere")
    assert r.exit_code == 0, r.output
    assert "was not found" in r.stderr and "--videos DIR" in r.stderr
    assert (proj / "out" / "DAVIS_480p" / "blackswan.yaml").exists()
    (proj / "bad.csv").write_text("Video name,Style Change Caption\nswan,x\n")
    r = invoke(runner, "loveu", "bad.csv")
    assert r.exit_code == 2
    assert r.stderr.startswith("error: bad.csv: missing column(s): caption ('Our GT caption')")
    assert len(r.stderr.strip().splitlines()) == 1
    r = invoke(runner, "loveu", "nope.csv")
    assert r.exit_code == 2 and "nope.csv: file not found" in r.stderr
