"""Spec loading and validation in recut.spec: every problem is one
``file:line: field.path: message`` issue, raised before anything runs."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from recut.spec import SpecBase, SpecError, SpecIssue, json_schema, load_spec
from recut.video import make_test_video

ISSUE_RE = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?P<path>[A-Za-z0-9_.]+): (?P<msg>.+)$")

# Line numbers below refer to this text (1-based).
BASE = """\
method: sdedit
input:
  video: media/clip.mp4
  frames: {count: 8}
model:
  profile: tiny-random
params:
  strength: 0.5
edits:
  - name: a
    prompt: a cat
  - name: b
    prompt: a dog
"""
N_BASE = BASE.count("\n")  # 13: a line appended to BASE is line 14


@pytest.fixture(autouse=True)
def _no_root_override(monkeypatch):
    monkeypatch.delenv("RECUT_ROOT", raising=False)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_test_video(tmp_path_factory.mktemp("clip") / "clip.mp4", frames=8)


@pytest.fixture
def project(tmp_path, clip) -> Path:
    """A project root (has .git) holding media/clip.mp4 (8 frames)."""
    root = tmp_path / "proj"
    (root / ".git").mkdir(parents=True)
    (root / "media").mkdir()
    shutil.copy(clip, root / "media" / "clip.mp4")
    return root


def write(project: Path, text: str, name: str = "spec.yaml") -> Path:
    p = project / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def issues_of(path: Path) -> list[SpecIssue]:
    with pytest.raises(SpecError) as ei:
        load_spec(str(path))
    issues = ei.value.issues
    assert issues
    # the exception text is exactly the issue lines
    assert str(ei.value) == "\n".join(str(i) for i in issues)
    return issues


def one_issue(path: Path, line: int, field: str, *fragments: str) -> str:
    """Assert exactly one issue, at ``path:line: field: ...`` containing every fragment."""
    issues = issues_of(path)
    assert len(issues) == 1, [str(i) for i in issues]
    text = str(issues[0])
    m = ISSUE_RE.match(text)
    assert m, text
    assert m["file"] == str(path)
    assert int(m["line"]) == line, text
    assert m["path"] == field, text
    assert text.startswith(f"{path}:{line}: {field}: ")
    for frag in fragments:
        assert frag in m["msg"], text
    return m["msg"]


# ------------------------------------------------------------------ valid


def test_valid_spec_loads_with_defaults(project):
    spec = load_spec(write(project, BASE))
    assert isinstance(spec, SpecBase)
    assert spec.method == "sdedit"  # type: ignore[attr-defined]
    assert spec.seed == 0 and spec.version == 1 and spec.sweep == {}
    assert spec.allow_outside_root is False
    assert spec.input.kind == "video"
    assert spec.input.video == project / "media" / "clip.mp4"
    assert (spec.input.frames.start, spec.input.frames.count, spec.input.frames.stride) == (0, 8, 1)
    assert spec.input.frames.fps is None and spec.input.size is None
    params = spec.params  # type: ignore[attr-defined]
    assert params.strength == 0.5  # given
    assert (params.steps, params.guidance_scale, params.eta, params.variant) == (20, 7.5, 0.0, "image")
    assert spec.evaluation.metrics == ["psnr", "ssim", "temporal_l1", "flow_warp_error"]
    assert spec.evaluation.mask == "auto" and spec.evaluation.clip is None
    assert spec.outputs.formats == ["mp4"] and spec.outputs.dir is None
    assert spec.edit_names() == ["a", "b"]
    assert spec.source == (project / "spec.yaml").resolve()
    assert spec.root == project.resolve()


def test_unnamed_edits_get_index_names(project):
    text = BASE.replace("  - name: a\n    prompt", "  - prompt")
    text = text.replace("  - name: b\n    prompt", "  - prompt")
    assert load_spec(write(project, text)).edit_names() == ["edit-0", "edit-1"]


# ------------------------------------------------------------------ structure and types


def test_unknown_top_level_key(project):
    p = write(project, BASE + "colour: red\n")
    assert one_issue(p, N_BASE + 1, "colour", "unknown field") == "unknown field (not allowed here)"


def test_unknown_nested_key(project):
    p = write(project, BASE.replace("  frames: {count: 8}\n", "  frames: {count: 8}\n  fps_hint: 3\n"))
    one_issue(p, 5, "input.fps_hint", "unknown field")


def test_unknown_key_deep_in_flow_mapping(project):
    p = write(project, BASE.replace("{count: 8}", "{count: 8, every: 2}"))
    one_issue(p, 4, "input.frames.every", "unknown field")


def test_wrong_type(project):
    p = write(project, BASE + 'seed: "abc"\n')
    one_issue(p, N_BASE + 1, "seed", "valid integer", "'abc'")


def test_unknown_method_lists_known(project):
    p = write(project, BASE.replace("method: sdedit", "method: nope"))
    msg = one_issue(p, 1, "method", "unknown method 'nope'", "known methods:", "sdedit")
    assert "{" not in msg  # names the tag, not the whole document


def test_unknown_method_reported_at_its_line(project):
    p = write(project, "# a comment\nseed: 1\n" + BASE.replace("method: sdedit", "method: nope"))
    one_issue(p, 3, "method", "unknown method 'nope'")


def test_missing_method(project):
    p = write(project, BASE.replace("method: sdedit\n", ""))
    one_issue(p, 1, "method", "missing", "sdedit")


def test_missing_required_field(project):
    p = write(project, BASE.replace("model:\n  profile: tiny-random\n", ""))
    one_issue(p, 1, "model", "required")


def test_unknown_profile_lists_known(project):
    p = write(project, BASE.replace("tiny-random", "nope"))
    one_issue(p, 6, "model.profile", "unknown profile 'nope'", "known profiles:", "tiny-random", "sd15")


# ------------------------------------------------------------------ media


def test_missing_video_names_file(project):
    p = write(project, BASE.replace("media/clip.mp4", "media/missing.mp4"))
    one_issue(p, 3, "input.video", "file not found", "media/missing.mp4")


def test_video_is_a_directory(project):
    p = write(project, BASE.replace("media/clip.mp4", "media"))
    one_issue(p, 3, "input.video", "directory")


def test_corrupt_video_names_file(project):
    (project / "media" / "junk.mp4").write_bytes(b"this is not a video\x00\x01" * 20)
    p = write(project, BASE.replace("media/clip.mp4", "media/junk.mp4"))
    one_issue(p, 3, "input.video", "junk.mp4")


def test_too_few_frames(project):
    p = write(project, BASE.replace("count: 8", "count: 20"))
    one_issue(p, 3, "input.video", "clip.mp4", "has 8 frames", "asks for 20")


def test_too_few_frames_with_start_and_stride(project):
    # start 2 + (4-1)*2 + 1 = 9 frames needed, clip has 8
    p = write(project, BASE.replace("{count: 8}", "{start: 2, count: 4, stride: 2}"))
    one_issue(p, 3, "input.video", "has 8 frames", "asks for 9")


def test_start_past_end_with_fps(project):
    p = write(project, BASE.replace("{count: 8}", "{start: 8, fps: 4}"))
    one_issue(p, 4, "input.frames.start", "only 8 frames")


@pytest.mark.parametrize("count", ["0", "-1"])
def test_count_must_be_positive(project, count):
    p = write(project, BASE.replace("count: 8", f"count: {count}"))
    one_issue(p, 4, "input.frames.count", "greater than 0")


# ------------------------------------------------------------------ params and edits


@pytest.mark.parametrize(("value", "words"), [("1.5", "less than or equal to 1"), ("-0.1", "greater than")])
def test_strength_out_of_range(project, value, words):
    p = write(project, BASE.replace("strength: 0.5", f"strength: {value}"))
    one_issue(p, 8, "params.strength", words, value)


def test_a_guidance_interval_above_the_strength_is_refused(project):
    """A run starting at t/T = strength below the interval would never be guided: refused with the
    values, for the spec and for a sweep value alike; strength 0 (no step) and guidance 1 pass."""
    text = BASE.replace("strength: 0.5", "strength: 0.25\n  guidance_interval: [0.3, 1.0]")
    one_issue(write(project, text), 7, "params", "guidance_interval [0.3, 1.0] starts at or above strength 0.25")
    ok = BASE.replace("strength: 0.5", "strength: 0.5\n  guidance_interval: [0.3, 1.0]")
    load_spec(str(write(project, ok, "ok.yaml")))
    load_spec(str(write(project, ok.replace("strength: 0.5", "strength: 0.2\n  guidance_scale: 1"), "g1.yaml")))
    swept = write(project, ok + "sweep: {params.strength: [0.0, 0.6, 0.3]}\n", "sweep.yaml")
    one_issue(swept, N_BASE + 2, "sweep.params.strength", "value 0.3 is invalid", "starts at or above strength 0.3")


def test_unknown_param(project):
    p = write(project, BASE.replace("  strength: 0.5\n", "  strength: 0.5\n  strenght: 0.3\n"))
    one_issue(p, 9, "params.strenght", "unknown field")


@pytest.mark.parametrize("prompt", ["''", "'   '", '"\\t \\n"'])
def test_empty_prompt(project, prompt):
    p = write(project, BASE.replace("prompt: a dog", f"prompt: {prompt}"))
    one_issue(p, 13, "edits.1.prompt", "prompt is empty")


def test_missing_prompt_is_empty_prompt(project):
    p = write(project, BASE.replace("    prompt: a dog\n", ""))
    one_issue(p, 12, "edits.1.prompt", "prompt is empty")


def test_edit_override_out_of_range(project):
    p = write(project, BASE + "    params: {strength: 2}\n")
    one_issue(p, N_BASE + 1, "edits.1.params.strength", "less than or equal to 1", "2")


def test_edit_override_unknown_key(project):
    p = write(project, BASE + "    params: {bogus: 2}\n")
    one_issue(p, N_BASE + 1, "edits.1.params.bogus", "unknown field")


def test_edit_override_valid(project):
    spec = load_spec(write(project, BASE + "    params: {strength: 0.9, variant: video}\n"))
    assert spec.edits[1].params == {"strength": 0.9, "variant": "video"}
    assert spec.edits[0].params == {}


def test_duplicate_edit_names(project):
    p = write(project, BASE.replace("name: b", "name: a"))
    one_issue(p, 12, "edits.1.name", "duplicate edit name 'a'")


def test_duplicate_with_default_name(project):
    text = BASE.replace("name: b", "name: edit-0").replace("  - name: a\n    prompt", "  - prompt")
    p = write(project, text)
    one_issue(p, 11, "edits.1.name", "duplicate edit name 'edit-0'")


def test_bad_edit_name(project):
    p = write(project, BASE.replace("name: b", "name: 'a/b'"))
    one_issue(p, 12, "edits.1.name", "pattern")


def test_no_edits(project):
    p = write(project, BASE.split("edits:")[0] + "edits: []\n")
    one_issue(p, 9, "edits", "at least 1")


def test_unknown_metric(project):
    p = write(project, BASE + "evaluate: [psnr, nosuch]\n")
    one_issue(p, N_BASE + 1, "evaluate.1", "unknown metric 'nosuch'", "psnr", "ssim", "temporal_l1")


# ------------------------------------------------------------------ sweeps


def test_sweep_valid(project):
    spec = load_spec(write(project, BASE + "sweep:\n  params.strength: [0.2, 0.8]\n  seed: [0, 1]\n"))
    assert spec.sweep == {"params.strength": [0.2, 0.8], "seed": [0, 1]}


def test_sweep_unknown_path(project):
    p = write(project, BASE + "sweep:\n  params.nosuch: [1, 2]\n")
    one_issue(p, N_BASE + 2, "sweep.params.nosuch", "unknown field")


def test_sweep_unsweepable_path(project):
    p = write(project, BASE + "sweep:\n  model.profile: [sd15]\n")
    one_issue(p, N_BASE + 2, "sweep.model.profile", "only `params.<name>` and `seed`")


def test_sweep_invalid_value(project):
    p = write(project, BASE + "sweep:\n  params.strength: [0.2, 3]\n")
    one_issue(p, N_BASE + 2, "sweep.params.strength", "value 3 is invalid", "less than or equal to 1")


def test_sweep_invalid_seed(project):
    p = write(project, BASE + "sweep:\n  seed: [1, -5]\n")
    one_issue(p, N_BASE + 2, "sweep.seed", "value -5 is invalid")


def test_sweep_empty(project):
    p = write(project, BASE + "sweep:\n  seed: []\n")
    one_issue(p, N_BASE + 2, "sweep.seed", "at least one value")


# ------------------------------------------------------------------ paths


def test_path_outside_root_rejected_then_allowed(project, clip):
    outside = project.parent / "outside.mp4"
    shutil.copy(clip, outside)
    text = BASE.replace("media/clip.mp4", "../../outside.mp4")
    p = write(project, text, "specs/s.yaml")  # ../../ from specs/ leaves the project
    one_issue(p, 3, "input.video", "outside the project root", "allow_outside_root")

    spec = load_spec(write(project, "allow_outside_root: true\n" + text, "specs/s.yaml"))
    assert spec.input.video == outside
    assert spec.allow_outside_root is True


def test_quoted_false_does_not_allow_outside_root(project, clip):
    shutil.copy(clip, project.parent / "outside.mp4")
    text = 'allow_outside_root: "false"\n' + BASE.replace("media/clip.mp4", "../../outside.mp4")
    p = write(project, text, "specs/s.yaml")
    one_issue(p, 4, "input.video", "outside the project root")


def test_output_dir_outside_root_rejected(project):
    p = write(project, BASE + "outputs:\n  dir: ../elsewhere\n")
    one_issue(p, N_BASE + 2, "outputs.dir", "outside the project root")


def test_relative_paths_resolve_against_spec_folder(project, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # neither the project nor the spec folder
    text = BASE.replace("media/clip.mp4", "../../media/clip.mp4") + "outputs:\n  dir: out\n"
    spec = load_spec(write(project, text, "specs/sub/s.yaml"))
    assert spec.input.video == project / "media" / "clip.mp4"
    assert spec.outputs.dir == project / "specs" / "sub" / "out"
    assert spec.root == project.resolve()

    # the same relative path as from the project root is looked up next to the spec
    p = write(project, BASE, "specs/sub/s.yaml")
    one_issue(p, 3, "input.video", "file not found", str(project / "specs" / "sub" / "media" / "clip.mp4"))


# ------------------------------------------------------------------ file-level problems


def test_yaml_syntax_error_reports_line(project):
    p = write(project, BASE + "evaluate: [psnr\n  bad: : x\n")
    issues = issues_of(p)
    assert len(issues) == 1
    i = issues[0]
    assert i.file == str(p) and i.path == ""
    assert i.line is not None and N_BASE + 1 <= i.line <= N_BASE + 2
    assert str(i) == f"{p}:{i.line}: {i.message}"
    assert i.message.startswith("invalid YAML:")


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", ""])
def test_non_mapping_document(project, text):
    p = write(project, text)
    issues = issues_of(p)
    assert [str(i) for i in issues] == [f"{p}:1: a spec must be a YAML mapping (key: value)"]


def test_missing_spec_file(project):
    p = project / "nope.yaml"
    assert [str(i) for i in issues_of(p)] == [f"{p}: spec file not found"]


def test_several_errors_reported_at_once(project):
    text = BASE.replace("method: sdedit", "method: sdedit\nseed: -1\ncolour: x")
    text = text.replace("strength: 0.5", "strength: 9").replace("tiny-random", "nope")
    p = write(project, text)
    got = {(i.path, i.line) for i in issues_of(p)}
    assert got == {("seed", 2), ("colour", 3), ("model.profile", 8), ("params.strength", 10)}
    for i in issues_of(p):
        assert ISSUE_RE.match(str(i)), str(i)


def test_several_semantic_errors_reported_at_once(project):
    text = BASE.replace("name: b", "name: a").replace("prompt: a cat", "prompt: ''")
    p = write(project, text + "evaluate: [nosuch]\n")
    got = {(i.path, i.line) for i in issues_of(p)}
    assert got == {("edits.0.prompt", 11), ("edits.1.name", 12), ("evaluate.0", N_BASE + 1)}


# ------------------------------------------------------------------ JSON schema


def test_json_schema_discriminator_and_descriptions():
    schema = json_schema()
    assert schema["discriminator"]["propertyName"] == "method"
    assert "sdedit" in schema["discriminator"]["mapping"]
    assert schema["$schema"].startswith("https://json-schema.org/")
    defs = schema["$defs"]
    assert {"SDEditSpec", "SDEditParams", "InputSpec", "ModelSpec", "Edit"} <= set(defs)
    assert defs["SDEditSpec"]["additionalProperties"] is False

    missing: list[str] = []
    seen = 0

    def walk(node, where):
        nonlocal seen
        if isinstance(node, dict):
            props = node.get("properties")
            if isinstance(props, dict):
                for name, sub in props.items():
                    seen += 1
                    if not (isinstance(sub, dict) and sub.get("description")):
                        missing.append(f"{where}.{name}")
            for k, v in node.items():
                walk(v, f"{where}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]")

    walk(schema, "#")
    assert seen > 30
    assert not missing, f"fields without a description: {missing}"
