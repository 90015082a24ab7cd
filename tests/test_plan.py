"""The invalidation table: which spec change recomputes which stage.

Keys are computed by the planner without running anything, so this table is
exact and fast. Labels: preprocess, sample[a], evaluate[a], sample[b], ...
"""

from __future__ import annotations

import pytest
import yaml

from recut.plan import build_plan
from recut.spec import load_spec
from recut.store import Store
from tests.conftest import BASE_SPEC, Project

ALL_A = {"sample[a]", "evaluate[a]"}
ALL_B = {"sample[b]", "evaluate[b]"}


def keys(project: Project, text: str) -> dict[str, str]:
    spec = load_spec(project.spec(text))
    plan = build_plan([spec])
    out = {}
    for n in plan.ordered():
        label = n.stage.name if not n.stage.per_edit else f"{n.stage.name}[{n.instances[0].edit}]"
        out[label] = n.key
    return out


def changed(project: Project, mutate) -> set[str]:
    base = yaml.safe_load(BASE_SPEC)
    before = keys(project, yaml.safe_dump(base))
    mutate(base)
    after = keys(project, yaml.safe_dump(base))
    return {label for label, key in after.items() if before.get(label) != key}


def _set(path: str, value):
    def mutate(d):
        cur = d
        parts = path.split(".")
        for p in parts[:-1]:
            cur = cur[int(p)] if p.isdigit() else cur.setdefault(p, {})
        last = parts[-1]
        if isinstance(cur, list):
            cur[int(last)] = value
        else:
            cur[last] = value

    return mutate


TABLE = [
    ("edits.0.prompt", "a green square", ALL_A),
    ("edits.0.negative_prompt", "blurry", ALL_A),
    ("edits.1.params", {"guidance_scale": 5.0}, ALL_B),
    ("edits.1.params", {"frame_batch": 1}, set()),  # a memory knob: no result change
    ("params.strength", 0.7, ALL_A | ALL_B),
    ("params.steps", 6, ALL_A | ALL_B),
    ("params.frame_batch", 2, set()),
    ("seed", 1, ALL_A | ALL_B),
    ("input.frames", {"start": 1, "count": 4}, {"preprocess"} | ALL_A | ALL_B),
    ("input.size", {"width": 16, "height": 16}, {"preprocess"} | ALL_A | ALL_B),
    ("model.dtype", "float16", ALL_A | ALL_B),
    ("evaluate", ["psnr"], {"evaluate[a]", "evaluate[b]"}),
    ("outputs", {"formats": ["npy"]}, set()),
    ("name", "renamed", set()),
    ("description", "free text", set()),
]


@pytest.mark.parametrize(("path", "value", "expected"), TABLE, ids=[f"{p}={v}" for p, v, _ in TABLE])
def test_invalidation_table(project: Project, path: str, value, expected: set[str]) -> None:
    assert changed(project, _set(path, value)) == expected


def test_input_content_change_recomputes_everything(project: Project) -> None:
    from recut.video import make_test_video

    before = keys(project, BASE_SPEC)
    make_test_video(project.root / "media" / "clip.mp4", frames=8, width=32, height=32, fps=8, seed=7)
    after = keys(project, BASE_SPEC)
    assert {k for k in after if after[k] != before[k]} == {"preprocess"} | ALL_A | ALL_B


def test_moving_the_input_file_changes_nothing(project: Project) -> None:
    before = keys(project, BASE_SPEC)
    moved = project.root / "media" / "moved.mp4"
    (project.root / "media" / "clip.mp4").rename(moved)
    after = keys(project, BASE_SPEC.replace("media/clip.mp4", str(moved)))
    assert after == before


def test_adding_an_edit_adds_only_its_stages(project: Project) -> None:
    base = yaml.safe_load(BASE_SPEC)
    before = keys(project, yaml.safe_dump(base))
    base["edits"].append({"name": "c", "prompt": "a yellow square"})
    after = keys(project, yaml.safe_dump(base))
    assert set(after) - set(before) == {"sample[c]", "evaluate[c]"}
    assert all(after[k] == before[k] for k in before)


def test_edits_share_preprocess_and_identical_edits_dedupe(project: Project) -> None:
    base = yaml.safe_load(BASE_SPEC)
    base["edits"].append({"name": "c", "prompt": "a red square"})  # same as edit a
    plan = build_plan([load_spec(project.spec(yaml.safe_dump(base)))])
    kinds = [n.stage.name for n in plan.ordered()]
    assert kinds.count("preprocess") == 1
    assert kinds.count("sample") == 2  # a and c share one sample
    shared = next(n for n in plan.ordered() if n.stage.name == "sample" and len(n.instances) == 2)
    assert {i.edit for i in shared.instances} == {"a", "c"}


def test_sweep_shares_upstream(project: Project) -> None:
    base = yaml.safe_load(BASE_SPEC)
    base["sweep"] = {"params.strength": [0.3, 0.6, 0.9], "seed": [0, 1]}
    plan = build_plan([load_spec(project.spec(yaml.safe_dump(base)))])
    names = [n.stage.name for n in plan.ordered()]
    assert names.count("preprocess") == 1
    assert names.count("sample") == 2 * 3 * 2
    sp = plan.specs[0]
    assert len(sp.chains) == 12
    labels = {i.label for i in sp.chains}
    assert "a[strength=0.3,seed=1]" in labels


def test_force_marks_stage_and_downstream(project: Project, tmp_path) -> None:
    spec = load_spec(project.spec())
    store = Store(tmp_path / "store")
    plan = build_plan([spec], store, {"sample"})
    status = {n.stage.name: n.forced for n in plan.ordered()}
    assert status == {"preprocess": False, "sample": True, "evaluate": True}
    with pytest.raises(ValueError, match="nosuch"):
        build_plan([spec], store, {"nosuch"})


def test_batch_dedupes_across_specs(project: Project) -> None:
    s1 = load_spec(project.spec(BASE_SPEC, "one.yaml"))
    s2 = load_spec(project.spec(BASE_SPEC.replace("a blue square", "a pink square"), "two.yaml"))
    plan = build_plan([s1, s2])
    names = [n.stage.name for n in plan.ordered()]
    assert names.count("preprocess") == 1
    assert names.count("sample") == 3  # a is shared, b differs


def test_renaming_an_edit_reuses_its_artifacts(project: Project) -> None:
    before = keys(project, BASE_SPEC)
    after = keys(project, BASE_SPEC.replace("name: a,", "name: renamed,"))
    assert set(after.values()) == set(before.values())
