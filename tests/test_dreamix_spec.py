"""dreamix specs: validation errors before compute, and the plan of a sweep (finetunes shared across s)."""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from recut.cli import app
from recut.outputs import materialize
from recut.plan import build_plan
from recut.runner import Job, StageRunner
from recut.spec import SpecError, load_spec
from recut.store import Store
from tests.conftest import Project

TOY = """\
method: dreamix
input:
  toy:
    objects: [{shape: circle, colour: red, size: large, motion: right}]
    frames: 8
    width: 32
    height: 32
model: {profile: tiny-random}
params: {steps: 2, finetune_steps: 1, lr: 1e-3, cascade: none}
edits:
  - {name: left, prompt: a large red circle moving left}
"""


def _spec(project: Project, text: str, name: str = "dx.yaml") -> Path:
    return project.spec(textwrap.dedent(text), name)


def _issues(project: Project, text: str) -> list[str]:
    with pytest.raises(SpecError) as err:
        load_spec(_spec(project, text))
    return [str(i) for i in err.value.issues]


def _images(project: Project, n: int) -> list[str]:
    out = []
    for i in range(n):
        img = np.full((32, 32, 3), 255, np.uint8)
        cv2.circle(img, (8 + 5 * i, 16), 6, (0, 0, 255), -1)
        p = project.root / "media" / f"subject-{i}.png"
        cv2.imwrite(str(p), img)
        out.append(str(p))
    return out


def test_valid_specs_of_every_mode(project: Project) -> None:
    load_spec(_spec(project, TOY))
    imgs = _images(project, 3)
    subject = TOY.replace(TOY[TOY.index("  toy:") : TOY.index("model:")], f"  images: {json.dumps(imgs)}\n").replace(
        "cascade: none}", "cascade: none, mode: subject, finetune_prompt: a red circle}"
    )
    assert load_spec(_spec(project, subject)).params.filled().strength == 1.0
    animate = TOY.replace(TOY[TOY.index("  toy:") : TOY.index("model:")], f"  image: {imgs[0]}\n").replace(
        "cascade: none}", "cascade: none, mode: animate, finetune_prompt: a red circle, animation: {kind: zoom}}"
    )
    assert load_spec(_spec(project, animate)).params.filled().alpha == 0.0


def test_subject_needs_two_images(project: Project) -> None:
    imgs = _images(project, 1)
    text = TOY.replace(TOY[TOY.index("  toy:") : TOY.index("model:")], f"  images: {json.dumps(imgs)}\n")
    text = text.replace("cascade: none}", "cascade: none, mode: subject, finetune_prompt: a red circle}")
    issues = _issues(project, text)
    assert issues == [
        f"{project.root}/specs/dx.yaml:3: input.images: subject mode needs at least 2 images of the subject "
        "to finetune on, got 1"
    ]


def test_subject_mode_checks_the_interval_against_its_strength_of_one(project: Project) -> None:
    """Subject mode always samples at s = 1, so an interval is checked against 1: [0.4, 1] passes,
    and a stray strength gets the subject-mode error, not a guidance one."""
    imgs = _images(project, 3)
    text = TOY.replace(TOY[TOY.index("  toy:") : TOY.index("model:")], f"  images: {json.dumps(imgs)}\n")
    text = text.replace(
        "cascade: none}", "cascade: none, mode: subject, finetune_prompt: a red circle, guidance_interval: [0.4, 1.0]}"
    )
    load_spec(_spec(project, text))
    (issue,) = _issues(project, text.replace("mode: subject,", "mode: subject, strength: 0.3,"))
    assert "subject mode generates from text alone; strength must be 1 (got 0.3)" in issue


@pytest.mark.parametrize(
    ("params", "where", "message"),
    [
        ("alpha: 1.5", "params.alpha", "less than or equal to 1 (got 1.5)"),
        ("alpha: -0.2", "params.alpha", "greater than or equal to 0 (got -0.2)"),
        ("strength: 1.2", "params.strength", "less than or equal to 1 (got 1.2)"),
        ("strength: -1", "params.strength", "greater than or equal to 0 (got -1)"),
        ("guidance_interval: [0.6, 0.4]", "params.guidance_interval", "0 <= low < high <= 1, got [0.6, 0.4]"),
        ("guidance_interval: [0.5]", "params.guidance_interval.1", "Field required"),
        ("strength: 0.3, guidance_interval: [0.4, 1.0]", "params", "[0.4, 1.0] starts at or above strength 0.3"),
        ("guidance_interval: [0.7, 1.0]", "params", "at or above strength 0.7"),  # the edit mode's default s
    ],
)
def test_alpha_and_strength_outside_unit_interval(project: Project, params: str, where: str, message: str) -> None:
    text = TOY.replace("cascade: none}", f"cascade: none, {params}}}")
    (issue,) = _issues(project, text)
    assert f"dx.yaml:9: {where}: " in issue and message in issue


def test_sweep_value_outside_unit_interval(project: Project) -> None:
    (issue,) = _issues(project, TOY + "sweep: {params.strength: [0.2, 1.4]}\n")
    assert "dx.yaml:12: sweep.params.strength: value 1.4 is invalid" in issue


def test_cascade_that_does_not_chain(project: Project) -> None:
    text = TOY.replace(
        "cascade: none}",
        "cascade: [{width: 32, height: 32, frames: 4}, {kind: v2v, width: 64, height: 64, frames: 4, "
        "from: [48, 32, 4]}]}",
    )
    (issue,) = _issues(project, text)
    assert issue.endswith(
        "params.cascade.1.from: stage 1 takes 48x32x4 (width x height x frames), but stage 0 produces 32x32x4"
    )


def test_a_cascade_stage_size_the_model_cannot_take(project: Project) -> None:
    """Each stage's width and height must be multiples of its role's VAE and UNet factor: refused at
    validation, naming the stage, not at sampling."""
    from engines.common.checks import size_multiple

    m = size_multiple(load_spec(_spec(project, TOY)), "video")
    assert m and m > 1
    odd = 32 + m // 2
    text = TOY.replace(
        "cascade: none}",
        f"cascade: [{{width: 32, height: 32, frames: 4}}, {{kind: v2v, width: {odd}, height: 32, frames: 4}}]}}",
    )
    (issue,) = _issues(project, text)
    assert issue.endswith(
        f"params.cascade.1: stage 1 is {odd}x32, which the model's 'video' weights need as multiples of {m}"
    )


def test_the_guidance_interval_is_checked_against_every_cascade_stage(project: Project) -> None:
    """A v2v stage starts from its own strength (0.5 by default), so an interval the base stage
    reaches (s = 0.7) can leave an upscaling stage unguided: refused, naming the stage (in the
    params, a sweep value, or a profile's cascade: zeroscope's XL stage runs at 0.6)."""
    cascade = "cascade: [{width: 32, height: 32, frames: 4}, {kind: v2v, width: 64, height: 64, frames: 4}]"
    toy = TOY.replace("params: {steps: 2,", "params: {steps: 20,")  # 2 steps at s = 0.7 take timestep 1 alone
    ok = toy.replace("cascade: none}", f"{cascade}, guidance_interval: [0.4, 1.0]}}")
    load_spec(_spec(project, ok))
    bad = ok.replace("[0.4, 1.0]", "[0.55, 1.0]")
    (issue,) = _issues(project, bad)
    assert "dx.yaml:9: params.guidance_interval: params.cascade, stage 1 (video, strength 0.5): " in issue
    assert "guidance_interval [0.55, 1.0] starts at or above strength 0.5" in issue
    load_spec(_spec(project, bad.replace("guidance_interval", "guidance_scale: 1, guidance_interval")))  # unguided
    (issue,) = _issues(project, ok + "sweep: {params.guidance_interval: [[0.2, 1.0], [0.55, 1.0]]}\n")
    assert "sweep.params.guidance_interval: params.cascade, stage 1 (video, strength 0.5)" in issue
    zeroscope = toy.replace("{profile: tiny-random}", "{profile: zeroscope}")
    (issue,) = _issues(project, zeroscope.replace("cascade: none}", "guidance_interval: [0.65, 1.0]}"))
    assert "params.guidance_interval: the zeroscope profile's cascade, stage 1 (video_xl, strength 0.6): " in issue


def test_subject_mode_rules_and_cli_exit_code(project: Project) -> None:
    imgs = _images(project, 2)
    text = TOY.replace(TOY[TOY.index("  toy:") : TOY.index("model:")], f"  images: {json.dumps(imgs)}\n")
    text = text.replace("cascade: none}", "cascade: none, mode: subject, alpha: 0.5, strength: 0.6}")
    issues = _issues(project, text)
    assert any("params.alpha: subject mode finetunes on an image collection" in i for i in issues)
    assert any(
        "params.strength: subject mode generates from text alone; strength must be 1 (got 0.6)" in i for i in issues
    )
    assert any("params.finetune_prompt: describe the input" in i for i in issues)
    res = CliRunner().invoke(app, ["validate", str(project.root / "specs" / "dx.yaml")])
    assert res.exit_code == 2 and "params.alpha" in res.output and "Traceback" not in res.output


def test_sweep_3x3_plans_3_finetunes_and_9_samples(project: Project) -> None:
    text = TOY + "sweep: {params.finetune_steps: [0, 1, 2], params.strength: [0.0, 0.5, 1.0]}\n"
    spec = load_spec(_spec(project, text))
    plan = build_plan([spec])
    count = Counter(n.stage.name for n in plan.ordered())
    assert count == {"preprocess": 1, "prepare": 1, "finetune": 3, "sample": 9, "evaluate": 9}
    # each finetune serves the three strengths of its row
    for n in plan.ordered():
        if n.stage.name == "finetune":
            assert sorted(dict(i.point)["params.strength"] for i in n.instances) == [0.0, 0.5, 1.0]
    # a new prompt or strength reuses every finetune; a new alpha recomputes them
    text2 = text.replace("moving left", "moving up").replace("[0.0, 0.5, 1.0]", "[0.0, 0.5, 0.9]")
    again = build_plan([load_spec(_spec(project, text2))])
    ft = {n.key for n in plan.ordered() if n.stage.name == "finetune"}
    assert ft == {n.key for n in again.ordered() if n.stage.name == "finetune"}
    alpha = build_plan([load_spec(_spec(project, text.replace("lr: 1e-3", "lr: 1e-3, alpha: 1.0")))])
    assert not ft & {n.key for n in alpha.ordered() if n.stage.name == "finetune"}


def test_sweep_runs_each_finetune_once(project: Project) -> None:
    """Run a 2x2 sweep through the store: 2 finetunes computed, then everything cached."""
    text = TOY + "sweep: {params.finetune_steps: [0, 1], params.strength: [0.0, 0.5]}\n"
    spec = load_spec(_spec(project, text))
    store = Store(project.store)
    runner = StageRunner()

    refs: dict = {}

    def run_all() -> Counter:
        plan = build_plan([spec], store)
        computed: Counter = Counter()
        for n in plan.ordered():
            if not n.cached:
                computed[n.stage.name] += 1
            job: Job = n.job({name: refs[key] for name, key in n.upstream.items()}, str(store.root))
            refs[n.key] = runner.run(job)
        return computed

    assert run_all() == {"preprocess": 1, "prepare": 1, "finetune": 2, "sample": 4, "evaluate": 4}
    assert run_all() == {}
    # the contact sheet: rows = finetune steps, columns = strength, each cell with its metrics
    plan = build_plan([spec], store)
    summary = materialize(plan.specs[0], refs, {n.stage.name: n.kind for n in plan.ordered()})
    (sheet,) = summary["contact_sheets"]
    assert sheet["rows"] == {"param": "params.finetune_steps", "values": [0, 1]}
    assert sheet["columns"] == {"param": "params.strength", "values": [0.0, 0.5]}
    cell = sheet["cells"][1][0]
    assert cell["point"] == {"params.finetune_steps": 1, "params.strength": 0.0}
    assert cell["output"] == "left__finetune_steps-1__strength-0.0" and "psnr" in cell["metrics"]
    assert cell["metrics"] == summary["outputs"][cell["output"]]["metrics"]
    img = cv2.imread(sheet["image"])
    assert img.shape[0] > 2 * 32 and img.shape[1] > 2 * 4 * 32  # 2 rows, 2 columns of 4-frame strips
    # s = 0 is the input through the VAE whatever the finetune; at s = 0.5 the finetune shows
    by_point = {tuple(v for _, v in i.point): ch["sample"] for i, ch in plan.specs[0].chains.items()}
    out = {pt: np.load(refs[k].file("frames.npy")) for pt, k in by_point.items()}
    assert np.array_equal(out[(0, 0.0)], out[(1, 0.0)]) and not np.array_equal(out[(0, 0.5)], out[(1, 0.5)])


def test_alpha_sweep_gets_the_paper_steps_per_alpha(project: Project) -> None:
    text = TOY.replace("finetune_steps: 1, ", "") + "sweep: {params.alpha: [0.0, 0.35, 1.0]}\n"
    plan = build_plan([load_spec(_spec(project, text))])
    fts = [n for n in plan.ordered() if n.stage.name == "finetune"]
    assert len(fts) == 3 and all(n.reads["params.finetune_steps"] is None for n in fts)
    from engines.dreamix.params import fill_defaults

    steps = sorted(fill_defaults("edit", n.reads["params.alpha"], None, None)[2] for n in fts)
    assert steps == [64, 100, 250]
