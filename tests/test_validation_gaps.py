"""Bad inputs that used to pass `recut validate` and failed (or misbehaved) at run time (issue 26, 1).

Each test writes one bad spec, made from an example in specs/examples/ or a small video spec, runs
`recut validate` (and `recut run` where a file could be written) and asserts exit 2, the exact
``file:line: field.path: message`` line, and that nothing was written in the project.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from recut.cli import app
from recut.spec import SpecError, load_spec
from recut.video import make_test_video

EXAMPLES = Path(__file__).resolve().parent.parent / "specs" / "examples"

VIDEO = """\
method: sdedit
input:
  video: ../media/clip.mp4
  frames: {count: 8}
  size: {width: 64, height: 64}
model: {profile: tiny-random}
params: {strength: 0.5, steps: 4}
edits:
  - {name: red, prompt: a red square}
evaluate: [psnr, ssim]
"""


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.delenv("RECUT_ROOT", raising=False)
    monkeypatch.delenv("RECUT_DEBUG", raising=False)
    monkeypatch.setenv("RECUT_STORE", str(tmp_path / "store"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_test_video(tmp_path_factory.mktemp("clip") / "clip.mp4", frames=8)


@pytest.fixture
def project(tmp_path, clip, monkeypatch) -> Path:
    """A project root (has .git) with media/clip.mp4 and specs/; the current folder."""
    root = tmp_path / "proj"
    (root / ".git").mkdir(parents=True)
    (root / "media").mkdir()
    (root / "specs").mkdir()
    shutil.copy(clip, root / "media" / "clip.mp4")
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def outside(tmp_path) -> Path:
    """A folder beside the project, outside its root."""
    d = tmp_path / "elsewhere"
    d.mkdir()
    return d


def example(name: str, *replacements: tuple[str, str]) -> str:
    """An example spec's text with each ``(old, new)`` replaced (``old`` must occur once)."""
    text = (EXAMPLES / name).read_text()
    for old, new in replacements:
        assert text.count(old) == 1, (name, old)
        text = text.replace(old, new)
    return text


def line_of(text: str, fragment: str, nth: int = 1) -> int:
    """The 1-based line of the ``nth`` line containing ``fragment``."""
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if fragment in line]
    return hits[nth - 1]


def write(project: Path, name: str, text: str) -> Path:
    p = project / "specs" / name
    p.write_text(text)
    return p


def files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if ".git" not in p.parts}


def validate(project: Path, text: str, command: str = "validate"):
    spec = project / "specs" / "bad.yaml"
    spec.write_text(text)
    before = files(project)
    result = CliRunner().invoke(app, [command, "specs/bad.yaml"])
    assert "Traceback" not in result.output
    assert files(project) == before, "validation wrote into the project"
    assert not (project / "outputs").exists() and not (project / ".recut").exists()
    return result


def refused(project: Path, text: str, line: int, field: str, *fragments: str, command: str = "validate") -> str:
    """Assert exit 2 with a `specs/bad.yaml:<line>: <field>: ...` line holding every fragment."""
    r = validate(project, text, command)
    assert r.exit_code == 2, r.output
    prefix = f"specs/bad.yaml:{line}: {field}: "
    hits = [x for x in r.stderr.splitlines() if x.startswith(prefix)]
    assert hits, f"no line starts with {prefix!r}:\n{r.stderr}"
    for frag in fragments:
        assert frag in hits[0], (frag, hits[0])
    assert "nothing was run" in r.stderr
    return hits[0]


# ------------------------------------------------------------------ 1. integers beyond what the code uses

HUGE = "1000000000000000000000000000000"


def test_steps_beyond_the_training_timesteps(project):
    text = example("sdedit-toy.yaml", ("steps: 8", f"steps: {HUGE}"))
    refused(project, text, line_of(text, HUGE), "params.steps", "less than or equal to 999", f"(got {HUGE})")


def test_steps_999_is_the_limit(project):
    """1000 DDIM steps on a "leading" schedule with steps_offset 1 (SD 1.5, the toy models) ask for
    timestep 1000 of 0..999: refused at validation, not an IndexError inside the sample stage."""
    r = validate(project, example("sdedit-toy.yaml", ("steps: 8", "steps: 999")))
    assert r.exit_code == 0, r.output
    text = example("sdedit-toy.yaml", ("steps: 8", "steps: 1000"))
    refused(project, text, line_of(text, "1000"), "params.steps", "less than or equal to 999")


def test_seed_beyond_int64(project):
    text = example("sdedit-toy.yaml", ("model:", f"seed: {10**30}\nmodel:"))
    refused(project, text, line_of(text, str(10**30)), "seed", "less than or equal to 9223372036854775807")


def test_seed_in_a_sweep_beyond_int64(project):
    text = example("sdedit-toy.yaml") + f"sweep:\n  seed: [0, {2**64}]\n"
    refused(project, text, line_of(text, "seed: [0"), "sweep.seed", f"value {2**64} is invalid", "less than or equal")


@pytest.mark.parametrize(
    ("name", "old", "new", "field", "limit"),
    [
        ("dreamix-edit.yaml", "steps: 25", f"steps: {HUGE}", "params.steps", "999"),
        ("dreamix-edit.yaml", "finetune_steps: 60", f"finetune_steps: {HUGE}", "params.finetune_steps", "100000"),
        ("dreamix-edit.yaml", "eta: 0.5", f"chunk_frames: {HUGE}", "params.chunk_frames", "4096"),
        ("dreamix-edit.yaml", "eta: 0.5", f"frame_batch: {HUGE}", "params.frame_batch", "4096"),
        ("videop2p-wordswap.yaml", "steps: 30,", f"steps: {HUGE},", "params.finetune.steps", "100000"),
        ("videop2p-wordswap.yaml", "inner_steps: 10", f"inner_steps: {HUGE}", "params.inversion.inner_steps", "1000"),
        ("videop2p-wordswap.yaml", "guidance: decoupled", f"frame_chunk: {HUGE}", "params.frame_chunk", "4096"),
        ("sdedit-toy.yaml", "steps: 8", f"steps: 8, frame_batch: {HUGE}", "params.frame_batch", "4096"),
    ],
)
def test_engine_integers_have_upper_bounds(project, name, old, new, field, limit):
    text = example(name, (old, new))
    refused(project, text, line_of(text, HUGE), field, f"less than or equal to {limit}")


def test_frame_count_and_stride_have_upper_bounds(project):
    text = VIDEO.replace("frames: {count: 8}", "frames: {count: 5000}")
    refused(project, text, 4, "input.frames.count", "less than or equal to 4096")
    text = VIDEO.replace("frames: {count: 8}", f"frames: {{stride: {HUGE}}}")
    refused(project, text, 4, "input.frames.stride", "less than or equal to 10000")


def test_decoded_clip_must_fit_in_memory(project):
    # 8 frames at 8 fps resampled to 1000 fps, no count: 1000 frames of 4096x4096 (47 GiB) at input.size
    text = VIDEO.replace("frames: {count: 8}", "frames: {fps: 1000}").replace(
        "{width: 64, height: 64}", "{width: 4096, height: 4096}"
    )
    refused(project, text, 4, "input.frames", "GiB of decoded RGB frames, above the 8 GiB")


# ------------------------------------------------------------------ 2. inf and nan


def test_infinite_guidance_scale(project):
    text = example("sdedit-toy.yaml", ("steps: 8}", "steps: 8, guidance_scale: .inf}"))
    refused(project, text, line_of(text, ".inf"), "params.guidance_scale", "must be a finite number (got inf)")


def test_infinite_fps(project):
    text = VIDEO.replace("frames: {count: 8}", "frames: {count: 8, fps: .inf}")
    refused(project, text, 4, "input.frames.fps", "must be a finite number (got inf)")


def test_nan_strength_says_finite_not_a_range(project):
    text = example("sdedit-toy.yaml", ("strength: 0.5", "strength: .nan"))
    msg = refused(project, text, line_of(text, ".nan"), "params.strength", "must be a finite number (got nan)")
    assert "less than or equal" not in msg


@pytest.mark.parametrize("value", ["-.inf", '"inf"', '"NaN"'])
def test_non_finite_in_every_engine(project, value):
    """A params model of every engine: a float with a range, and one without (videop2p's lr)."""
    cases = [
        ("dreamix-edit.yaml", "eta: 0.5", f"eta: {value}", "params.eta"),
        ("gen1-text.yaml", "temporal_guidance: 1.0", f"temporal_guidance: {value}", "params.temporal_guidance"),
        ("videop2p-wordswap.yaml", "lr: 1.0e-4", f"lr: {value}", "params.finetune.lr"),
        ("revideo-recolour.yaml", "steps: 25", f"steps: 25\n  control_scale: {value}", "params.control_scale"),
        (
            "revideo-recolour.yaml",
            "- mask: {truth: 0, dilate: 3}\n      content: {image",
            f"- mask: {{polygon: [[1, 1], [9, {value}], [20, 30]]}}\n      content: {{image",
            "params.areas.0.mask.polygon.1.1",
        ),
    ]
    for name, old, new, field in cases:
        text = example(name, (old, new))
        msg = refused(project, text, line_of(text, value), field, "must be a finite number (got ")
        assert "less than" not in msg and "greater than" not in msg


def test_non_finite_in_overrides_and_sweeps(project):
    base = example("sdedit-toy.yaml")
    text = base.replace("prompt: a large green", "params: {eta: .nan}, prompt: a large green")
    refused(project, text, line_of(text, ".nan"), "edits.0.params.eta", "must be a finite number (got nan)")
    text = base + "sweep:\n  params.guidance_scale: [5.0, .inf]\n"
    refused(
        project,
        text,
        line_of(text, ".inf"),
        "sweep.params.guidance_scale",
        "value inf is invalid: must be a finite number",
    )


def test_toy_scene_floats_are_finite(project):
    text = example("sdedit-toy.yaml", ("    seed: 1", "    seed: 1\n    fps: .nan"))
    msg = refused(project, text, line_of(text, ".nan"), "input.toy.fps", "must be a finite number (got nan)")
    assert "less than or equal" not in msg


# ------------------------------------------------------------------ 3. symbolic links out of the project


def test_video_linked_from_outside(project, outside, clip):
    shutil.copy(clip, outside / "clip.mp4")
    os.symlink(outside / "clip.mp4", project / "media" / "link.mp4")
    text = VIDEO.replace("../media/clip.mp4", "../media/link.mp4")
    refused(
        project, text, 3, "input.video", "symbolic link", str(outside.resolve() / "clip.mp4"), "outside the project"
    )
    r = validate(project, "allow_outside_root: true\n" + text)  # the way to allow it stays
    assert r.exit_code == 0, r.output


def test_media_folder_linked_from_outside(project, outside, clip):
    shutil.copy(clip, outside / "clip.mp4")
    os.symlink(outside, project / "shared")
    text = VIDEO.replace("../media/clip.mp4", "../shared/clip.mp4")
    refused(project, text, 3, "input.video", "symbolic link", "outside the project")


@pytest.mark.parametrize("command", ["validate", "run"])
def test_outputs_dir_linked_outside_receives_nothing(project, outside, command):
    os.symlink(outside, project / "out")
    text = VIDEO + "outputs: {dir: ../out}\n"
    refused(project, text, 11, "outputs.dir", "symbolic link", command=command)
    assert list(outside.iterdir()) == []


def test_evaluate_mask_file_linked_from_outside(project, outside):
    np.save(outside / "mask.npy", np.ones((64, 64), bool))
    os.symlink(outside / "mask.npy", project / "media" / "mask.npy")
    text = VIDEO.replace("evaluate: [psnr, ssim]", "evaluate: {metrics: [masked_psnr], mask: ../media/mask.npy}")
    refused(project, text, 10, "evaluate.mask", "symbolic link")


def test_engine_file_param_linked_from_outside(project, outside):
    """gen1's mask.file (an Engine.file_params path) had no root check at all."""
    mask = np.zeros((64, 64), bool)
    mask[10:30, 10:30] = True
    np.save(outside / "mask.npy", mask)
    os.symlink(outside / "mask.npy", project / "media" / "mask.npy")
    text = example("gen1-masked.yaml", ("mask: {truth: true, keep: outside}", "mask: {file: ../media/mask.npy}"))
    refused(project, text, line_of(text, "mask.npy"), "params.mask.file", "symbolic link")
    over = example(
        "gen1-text.yaml",
        ("- {name: green, prompt:", "- {name: green, params: {mask: {file: ../media/mask.npy}}, prompt:"),
    )
    refused(project, over, line_of(over, "mask.npy"), "edits.0.params.mask.file", "symbolic link")


def test_model_folder_linked_from_outside(project, outside):
    os.symlink(outside, project / "weights")
    text = VIDEO.replace("model: {profile: tiny-random}", "model: {path: ../weights}")
    refused(project, text, 6, "model.path", "symbolic link")


# ------------------------------------------------------------------ 4. duplicate keys


def test_duplicate_top_level_key(project):
    text = example("sdedit-toy.yaml") + "params: {strength: 0.9}\n"
    first, second = line_of(text, "params:"), line_of(text, "params:", 2)
    refused(
        project, text, second, "params", f"duplicate key 'params': first given on line {first}, again on line {second}"
    )


def test_duplicate_nested_key(project):
    text = VIDEO.replace("steps: 4}", "steps: 4, strength: 0.9}")
    refused(project, text, 7, "params.strength", "duplicate key 'strength'")
    # a key merged in with `<<` may be overridden: only keys written twice count
    merged = text.replace("model:", "description: &d {strength: 0.5}\nmodel:").replace(
        "params: {strength: 0.5, steps: 4, strength: 0.9}", "params: {<<: *d, strength: 0.9, steps: 4}"
    )
    r = validate(project, merged)
    assert "duplicate key" not in r.output
    assert "description: Input should be a valid string" in r.stderr  # the anchor's host, nothing else


# ------------------------------------------------------------------ 5. a truth mask needs ground truth


def test_truth_mask_on_a_video(project):
    text = VIDEO.replace("evaluate: [psnr, ssim]", "evaluate: {metrics: [psnr, masked_psnr], mask: truth}")
    refused(project, text, 10, "evaluate.mask", "'truth' is a toy scene's ground truth", "`input.video`")


def test_truth_mask_needs_toy_grammar_prompts(project):
    text = example(
        "sdedit-toy.yaml",
        (
            "evaluate: [psnr, ssim, temporal_l1, flow_warp_error, masked_psnr, masked_ssim]",
            "evaluate: {metrics: [masked_psnr], mask: truth}",
        ),
        ("prompt: a large green circle moving right over a gradient blue background", "prompt: a green ball"),
    )
    refused(
        project,
        text,
        line_of(text, "a green ball"),
        "edits.0.prompt",
        "evaluate.mask 'truth' needs a prompt in the toy caption grammar",
    )


# ------------------------------------------------------------------ 6. a prompt the text encoder cuts


def test_long_prompt_warns_with_the_dropped_words(project):
    words = " ".join(f"word{i}" for i in range(60))
    text = VIDEO.replace("prompt: a red square", f"prompt: a red square {words} the very end")
    r = validate(project, text)
    assert r.exit_code == 0, r.output
    assert "ok  specs/bad.yaml" in r.stdout
    warning = [x for x in r.stderr.splitlines() if x.startswith("specs/bad.yaml:9: edits.0.prompt: warning: ")]
    assert warning, r.stderr
    assert "edit 'red'" in warning[0] and "the text encoder reads 77" in warning[0]
    dropped = re.search(r"'([^']*)' is dropped", warning[0])
    assert dropped and dropped[1].endswith("the very end") and not dropped[1].startswith("a red")
    spec = load_spec(project / "specs" / "bad.yaml", emit_warnings=False)
    assert [w.path for w in spec.warnings] == ["edits.0.prompt"]
    short = load_spec(write(project, "short.yaml", VIDEO), emit_warnings=False)  # negative control
    assert short.warnings == []


def test_toy_tokenizer_limit_is_its_own(project):
    """The toy profile's tokenizer reads 40 tokens; its prompts are checked against that."""
    long = "a large green circle moving right and " * 6  # 42 tokens before the last object
    text = example("dreamix-edit.yaml", ("prompt: a large blue circle", f"prompt: {long}a large blue circle"))
    r = validate(project, text)
    assert r.exit_code == 0, r.output
    assert "edits.0.prompt: warning: edit 'blue'" in r.stderr and "reads 40" in r.stderr


# ------------------------------------------------------------------ 7. the rest of the class


def test_masked_metric_without_a_mask(project):
    text = VIDEO.replace("evaluate: [psnr, ssim]", "evaluate: {metrics: [psnr, masked_psnr], mask: none}")
    refused(project, text, 10, "evaluate.mask", "'masked_psnr'", "need a mask")


def test_evaluate_mask_file_not_a_mask(project):
    np.save(project / "media" / "mask.npy", np.ones((2, 2, 2, 2), bool))
    text = VIDEO.replace("evaluate: [psnr, ssim]", "evaluate: {metrics: [masked_psnr], mask: ../media/mask.npy}")
    refused(project, text, 10, "evaluate.mask", "a mask is [H, W] or [T, H, W]")


def test_fps_resampling_beyond_the_video(project):
    # 8 frames at 8 fps: 15 frames at 16 fps end on source frame 7, 16 frames need source frame 8
    text = VIDEO.replace("frames: {count: 8}", "frames: {count: 15, fps: 16}")
    r = validate(project, text)
    assert r.exit_code == 0, r.output
    text = VIDEO.replace("frames: {count: 8}", "frames: {count: 16, fps: 16}")
    refused(project, text, 3, "input.video", "has 8 frames, but the spec asks for")


def test_output_frame_rate_too_slow(project):
    text = example("sdedit-toy.yaml", ("    seed: 1", "    seed: 1\n  frames: {count: 1, stride: 10000}"))
    refused(project, text, line_of(text, "stride: 10000"), "input.frames.stride", "below the 0.002 fps")


def test_huge_trajectory_coordinate(project):
    text = example("toy-recolour.yaml", ("trajectory: {path: truth}", f"trajectory: {{path: [[1, {10**400}]]}}"))
    refused(project, text, line_of(text, "trajectory:"), "evaluate.trajectory.path", "finite pixel coordinates")


def test_recursive_yaml_anchor(project):
    text = VIDEO + "x-loop: &a [*a]\n"
    refused(project, text, 11, "x-loop", "unknown field")


def test_load_spec_raises_for_the_api_too(project):
    with pytest.raises(SpecError) as ei:
        load_spec(write(project, "api.yaml", VIDEO.replace("steps: 4", "steps: 4, guidance_scale: .inf")))
    assert [(i.line, i.path, i.message) for i in ei.value.issues] == [
        (7, "params.guidance_scale", "must be a finite number (got inf)")
    ]


def test_a_toy_scene_refuses_a_huge_seed_and_a_non_finite_speed() -> None:
    import pydantic

    from toyworld.scene import ToyScene

    obj = {"shape": "circle", "colour": "red"}
    with pytest.raises(pydantic.ValidationError, match="seed"):
        ToyScene(objects=[obj], seed=2**70)
    with pytest.raises(pydantic.ValidationError, match="finite"):
        ToyScene(objects=[{**obj, "speed": float("inf")}])


# ------------------------------------------------------------------ 8. checks the engines made only at run time


def test_a_frame_size_the_model_cannot_take(project):
    """VAE factor x UNet downsamplings of the toy models: 4 x 2 = 8; 60 is not a multiple."""
    for name in ("videop2p-style.yaml", "gen1-text.yaml"):
        text = example(name, ("  toy:\n", "  toy:\n    width: 60\n"))
        refused(project, text, line_of(text, "  toy:"), "input.toy", "frames of 60x64 are not multiples of 8")
    text = example("gen1-text.yaml", ("  toy:\n", "  toy:\n    width: 72\n"))
    assert validate(project, text).exit_code == 0


def test_evaluate_mask_engine_on_an_engine_without_an_edit_mask(project):
    text = VIDEO.replace("evaluate: [psnr, ssim]", "evaluate: {metrics: [masked_psnr], mask: engine}")
    refused(project, text, 10, "evaluate.mask", "sdedit writes no edit mask")
    text = example("gen1-text.yaml", ("  trajectory: {path: truth}", "  trajectory: {path: truth}\n  mask: engine"))
    refused(project, text, line_of(text, "mask: engine"), "evaluate.mask", "gen1 writes no edit mask")


def test_sdedit_variant_needs_its_role_and_unet_class(project):
    text = VIDEO.replace("params: {strength: 0.5, steps: 4}", "params: {strength: 0.5, steps: 4, variant: video}")
    assert validate(project, text).exit_code == 0  # tiny-random has both roles
    image_only = Path(load_spec(EXAMPLES / "sdedit-tiny.yaml").model.resolve().components["image"])
    text = "allow_outside_root: true\n" + text.replace(
        "model: {profile: tiny-random}", f"model: {{path: {image_only}}}"
    )
    refused(project, text, line_of(text, "variant: video"), "params.variant", "loads a UNet3DConditionModel")


def test_gen1_settings_need_the_optional_components_they_load(project):
    """A gen1 model folder without a content projection: content `image` is refused at validation
    (the engine loads the projection only if present, and failed at the sample stage)."""
    toy = Path(load_spec(EXAMPLES / "gen1-content-image.yaml").model.resolve().components["gen1"])
    folder = project / "models" / "g1"
    folder.mkdir(parents=True)
    for part in toy.iterdir():
        if part.name != "content_projection":
            (folder / part.name).symlink_to(part.resolve())
    (project / "media" / "ref.png").write_bytes((EXAMPLES.parent.parent / "media/gen1/green-triangle.png").read_bytes())
    text = example(
        "gen1-content-image.yaml",
        ("model: {profile: toy}", "model: {path: ../models/g1}"),
        ("../../media/gen1/green-triangle.png", "../media/ref.png"),
    )
    text = "allow_outside_root: true\n" + text  # the folder's links lead to the repo's toy model
    refused(project, text, line_of(text, "content: image"), "params.content", "needs the model's content_projection")
    ok = validate(project, re.sub(r"  content_image: .*\n", "", text.replace("content: image", "content: text")))
    assert ok.exit_code == 0, ok.output


def test_a_trainable_regex_that_does_not_compile(project):
    """`re:` patterns are compiled at validation (the finetune stage died on re.error, with no field)."""
    text = example("videop2p-wordswap.yaml", ("lr: 1.0e-4}", "lr: 1.0e-4, trainable: ['re:(']}"))
    refused(project, text, line_of(text, "re:("), "params.finetune.trainable", "'re:(' is not a regular expression")


# ------------------------------------------------------------------ combinations the checks did not see


def test_two_swept_values_that_clash(project):
    """Each swept value is valid alone; together (strength 0.3 under an interval from 0.5) no step is
    guided. Refused at validation (`recut plan`/`run` died on the params model's raw error)."""
    sweep = "sweep: {params.strength: [0.3], params.guidance_interval: [[0.4, 1.0]]}\nedits:"
    text = example("sdedit-toy.yaml", ("edits:", sweep))
    refused(project, text, line_of(text, "sweep:"), "sweep.params.strength", "with the sweep point", "strength 0.3")


def test_a_guidance_interval_no_timestep_reaches(project):
    """4 steps at strength 0.6 take timesteps 251 and 1 ("leading" spacing): an interval from 0.5 * T
    guides none of them (both outputs came out the same whatever the guidance scale)."""
    params = "params: {strength: 0.6, steps: 4, guidance_scale: 7.5, guidance_interval: [0.5, 1.0]}"
    text = example("sdedit-toy.yaml", ("params: {strength: 0.5, steps: 8}", params))
    refused(project, text, line_of(text, "guidance_interval"), "params.guidance_interval", "[251, 1] of 1000")
    text = example("dreamix-edit.yaml", ("steps: 25", "steps: 4\n  guidance_interval: [0.5, 1.0]"))
    refused(project, text, line_of(text, "guidance_interval"), "params.guidance_interval", "stage 0", "[499, 249]")


def test_videop2p_checks_every_sweep_point(project):
    """`mode: replace` reached through a sweep needs prompts of one token count, like a written one."""
    text = example(
        "videop2p-wordswap.yaml",
        ("  mode: replace", "  mode: refine"),
        ("source_prompt: a large red circle", "source_prompt: a large bright red circle"),
        ("edits:", "sweep: {params.mode: [refine, replace]}\nedits:"),
    )
    refused(project, text, line_of(text, "sweep:"), "sweep.params.mode", "needs prompts with the same token count")


def test_videop2p_checks_each_edit_with_its_own_source_prompt(project):
    """An edit's `source_prompt` override is that edit's: the next edit's blend words are checked against
    the spec's source prompt (the override leaked into the edits after it)."""
    text = example(
        "videop2p-wordswap.yaml",
        (
            "  - {name: green, prompt: a large green circle moving right over a plain white background}",
            "  - name: green\n    prompt: a large green circle moving right over a plain white background\n"
            "    params: {source_prompt: a large blue circle moving right over a plain white background}",
        ),
        ("source_words: [red], target_words: [blue]", "source_words: [blue], target_words: [blue]"),
    )
    refused(
        project,
        text,
        line_of(text, "source_words: [blue]"),
        "edits.1.params.blend.source_words.0",
        "'blue' is not in the source prompt 'a large red circle",
    )


@pytest.mark.parametrize(
    ("old", "new", "field", "fragment"),
    [
        ("start: 0.2}", "start: 1.0}", "params.blend.start", "no step would blend"),
        ("start: 0.2}", "start: 0.2, max_side: 0.05}", "params.blend.max_side", "no cross-attention layer"),
    ],
)
def test_videop2p_blend_settings_that_would_never_blend(project, old, new, field, fragment):
    text = example("videop2p-wordswap.yaml", (old, new))
    refused(project, text, line_of(text, new.split(",")[0].rstrip("}")), field, fragment)
