"""The videop2p method through recut: validation errors, the stage graph's sharing, a real cached run."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from recut.cli import app
from recut.plan import build_plan
from recut.spec import load_spec
from recut.store import Store

SPEC = """\
method: videop2p
input:
  toy:
    objects: [{shape: circle, colour: red, size: large, motion: right}]
    background: {kind: plain, colour: white}
    frames: 3
    width: 32
    height: 32
    seed: 3
model: {profile: PROFILE}
params:
  source_prompt: a large red circle moving right over a plain white background
  finetune: {steps: 2, lr: 1.0e-4}
  inversion: {steps: 3, inner_steps: 2, lr: 0.1}
  guidance_scale: 3.0
  blend: {source_words: [circle], threshold: 0.3, start: 0.0, max_side: 1.0}
evaluate:
  metrics: [psnr, masked_psnr]
  mask: engine
edits:
  - {name: green, prompt: a large green circle moving right over a plain white background}
  - {name: blue, prompt: a large blue circle moving right over a plain white background}
  - {name: yellow, prompt: a large yellow circle moving right over a plain white background}
  - name: purple
    prompt: a large purple circle moving right over a plain white background
    params: {cross_replace: 0.8}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "proj"
    (root / ".git").mkdir(parents=True)
    (root / "specs").mkdir()
    monkeypatch.chdir(root)
    monkeypatch.delenv("RECUT_ROOT", raising=False)
    monkeypatch.setenv("RECUT_STORE", str(tmp_path / "store"))
    return root


def _write(project: Path, text: str, name: str = "vp.yaml", profile: str = "toy") -> Path:
    p = project / "specs" / name
    p.write_text(textwrap.dedent(text).replace("PROFILE", profile))
    return p


def _validate(path: Path) -> tuple[int, list[str]]:
    r = CliRunner().invoke(app, ["validate", str(path.relative_to(path.parent.parent))])
    assert "Traceback" not in r.output
    return r.exit_code, [ln for ln in r.stderr.splitlines() if ln.startswith("specs/")]


def _line_of(text: str, needle: str) -> int:
    return next(i for i, ln in enumerate(text.splitlines(), start=1) if needle in ln)


# --------------------------------------------------------------------------- validation


def test_valid_spec_passes(project: Path) -> None:
    code, lines = _validate(_write(project, SPEC))
    assert code == 0 and lines == []


def test_word_swap_with_different_token_counts_is_an_error(project: Path) -> None:
    text = SPEC.replace("blue circle moving right", "blue circle moving in a circle")
    code, lines = _validate(_write(project, text))
    assert code == 2
    line = _line_of(text, "moving in a circle")
    assert lines == [
        f"specs/vp.yaml:{line}: edits.1.prompt: mode 'replace' (word swap) needs prompts with the same token "
        "count: the source prompt 'a large red circle moving right over a plain white background' has 11 tokens, "
        "the target 'a large blue circle moving in a circle over a plain white background' has 13; use "
        "`mode: refine` for prompts of different length"
    ]
    # the same prompts are fine with refine
    ok = text.replace("  guidance_scale: 3.0\n", "  guidance_scale: 3.0\n  mode: refine\n")
    assert _validate(_write(project, ok))[0] == 0


def test_blend_and_equaliser_words_must_be_in_their_prompts(project: Path) -> None:
    text = SPEC.replace("source_words: [circle]", "source_words: [square]").replace(
        "params: {cross_replace: 0.8}", "params: {cross_replace: 0.8, equalizer: {red: 2.0}}"
    )
    code, lines = _validate(_write(project, text))
    assert code == 2
    src = "'a large red circle moving right over a plain white background'"
    bl = _line_of(text, "blend:")
    eq = _line_of(text, "equalizer")
    assert (
        f"specs/vp.yaml:{bl}: params.blend.source_words.0: blend word 'square' is not in the source prompt {src}"
        in lines
    )
    assert (
        f"specs/vp.yaml:{eq}: edits.3.params.equalizer.red: equaliser word 'red' is not in the target prompt "
        "'a large purple circle moving right over a plain white background'" in lines
    )
    # an edit's own target words are checked against its own prompt
    text = SPEC.replace("params: {cross_replace: 0.8}", "params: {blend: {source_words: [red], target_words: [green]}}")
    code, lines = _validate(_write(project, text))
    assert code == 2 and len(lines) == 1
    assert "edits.3.params.blend.target_words.0: blend word 'green' is not in the target prompt" in lines[0]
    # `evaluate.mask: engine` needs a blend mask from every edit
    text = SPEC.replace("  blend: {source_words: [circle], threshold: 0.3, start: 0.0, max_side: 1.0}\n", "")
    code, lines = _validate(_write(project, text))
    assert code == 2 and len(lines) == 4
    assert lines[0] == (
        f"specs/vp.yaml:{_line_of(text, 'mask: engine')}: evaluate.mask: `mask: engine` needs the local-blend mask, "
        "but edit 'green' has no `blend`; add one, or use `mask: truth` or `auto`"
    )


@pytest.mark.parametrize(
    ("old", "new", "field", "bad"),
    [
        ("threshold: 0.3", "threshold: 1.5", "params.blend.threshold", "1.5"),
        ("start: 0.0", "start: -0.2", "params.blend.start", "-0.2"),
        ("params: {cross_replace: 0.8}", "params: {cross_replace: 1.2}", "edits.3.params.cross_replace", "1.2"),
        ("guidance_scale: 3.0", "guidance_scale: 3.0\n  self_replace: 2", "params.self_replace", "2"),
    ],
)
def test_fractions_outside_unit_interval(project: Path, old: str, new: str, field: str, bad: str) -> None:
    text = SPEC.replace(old, new)
    code, lines = _validate(_write(project, text))
    assert code == 2 and len(lines) == 1, lines
    assert f": {field}: " in lines[0] and bad in lines[0]
    assert "than or equal to" in lines[0]  # states the bound


def test_reweight_needs_an_equaliser_and_source_prompt_is_required(project: Path) -> None:
    text = SPEC.replace("guidance_scale: 3.0", "guidance_scale: 3.0\n  mode: reweight")
    code, lines = _validate(_write(project, text))
    assert code == 2 and all("params.mode: mode 'reweight' needs an `equalizer`" in ln for ln in lines)
    assert len(lines) == 1  # once, not once per edit
    text = SPEC.replace("source_prompt: a large red circle moving right over a plain white background", "mode: refine")
    code, lines = _validate(_write(project, text))
    assert code == 2 and lines == [
        f"specs/vp.yaml:{_line_of(text, 'params:')}: params.source_prompt: the source prompt is empty; "
        "give the text that describes the input clip"
    ]


# --------------------------------------------------------------------------- plan: what is shared


def _keys(path: Path) -> dict[str, str]:
    plan = build_plan([load_spec(path)])
    return {
        (f"{n.stage.name}[{n.instances[0].edit}]" if n.stage.per_edit else n.stage.name): n.key for n in plan.ordered()
    }


def _changed(project: Path, mutate) -> set[str]:
    base = yaml.safe_load(SPEC.replace("PROFILE", "toy"))
    before = _keys(_write(project, yaml.safe_dump(base)))
    mutate(base)
    after = _keys(_write(project, yaml.safe_dump(base)))
    return {k for k, v in after.items() if before.get(k) != v}


def test_four_edits_share_one_finetune_and_inversion(project: Path) -> None:
    plan = build_plan([load_spec(_write(project, SPEC))])
    count: dict[str, int] = {}
    for n in plan.ordered():
        count[n.stage.name] = count.get(n.stage.name, 0) + 1
    assert count == {"preprocess": 1, "finetune": 1, "invert": 1, "nulltext": 1, "sample": 4, "evaluate": 4}

    def edit(i: int, **kw):
        return lambda d: d["edits"][i].update(kw)

    def param(key: str, value):
        return lambda d: d["params"].__setitem__(key, value)

    every = {f"{s}[{e}]" for s in ("sample", "evaluate") for e in ("green", "blue", "yellow", "purple")}
    assert _changed(project, edit(1, prompt="a large orange circle moving right over a plain white background")) == {
        "sample[blue]",
        "evaluate[blue]",
    }
    assert _changed(project, edit(0, params={"self_replace": 0.6})) == {"sample[green]", "evaluate[green]"}
    assert _changed(project, param("equalizer", {"circle": 2.0})) == every
    assert _changed(project, param("frame_chunk", 2)) == set()  # memory knob
    assert _changed(project, param("inversion", {"steps": 3, "inner_steps": 4, "lr": 0.1})) == {"nulltext"} | every
    assert (
        _changed(project, param("inversion", {"steps": 4, "inner_steps": 2, "lr": 0.1}))
        == {
            "invert",
            "nulltext",
        }
        | every
    )
    assert _changed(project, param("guidance_scale", 4.0)) == {"nulltext"} | every
    ft = {"finetune", "invert", "nulltext"} | every
    assert _changed(project, param("finetune", {"steps": 3, "lr": 1e-4})) == ft
    assert (
        _changed(project, param("source_prompt", "a large red circle moving left over a plain white background")) == ft
    )
    assert _changed(project, lambda d: d.__setitem__("seed", 5)) == ft  # only finetune draws noise


# --------------------------------------------------------------------------- a real run, cached


def _run(path: Path, store_root: Path) -> tuple[list[str], dict[str, object]]:
    from recut.runner import run_plan

    store = Store(store_root)
    plan = build_plan([load_spec(path)], store)
    refs = run_plan(plan, store_root)
    computed = [
        f"{n.stage.name}[{n.instances[0].edit}]" if n.stage.per_edit else n.stage.name
        for n in plan.ordered()
        if not n.cached
    ]
    return computed, {n.label: refs[n.key] for n in plan.ordered()}


def test_stages_run_and_cache_on_tiny_models(project: Path, tmp_path: Path) -> None:
    import torch

    torch.set_num_threads(1)
    text = SPEC.replace(
        "  - {name: yellow, prompt: a large yellow circle moving right over a plain white background}\n", ""
    )
    path = _write(project, text, profile="tiny-random")
    store = tmp_path / "runstore"
    computed, refs = _run(path, store)
    assert sorted(computed) == sorted(
        ["preprocess", "finetune", "invert", "nulltext"]
        + [f"{s}[{e}]" for s in ("sample", "evaluate") for e in ("green", "blue", "purple")]
    )
    ft = refs["finetune (shared by 3)"]
    from safetensors.torch import load_file

    delta = load_file(str(ft.dir / "delta.safetensors"))
    assert delta and all(("to_q" in k) or ("attn_temp" in k) for k in delta)
    traj = load_file(str(refs["invert (shared by 3)"].dir / "trajectory.safetensors"))["trajectory"]
    assert tuple(traj.shape) == (4, 4, 3, 4, 4)  # steps+1, C, F, h, w
    null = load_file(str(refs["nulltext (shared by 3)"].dir / "null.safetensors"))
    assert tuple(null["embeddings"].shape[:1]) == (3,)
    sample = refs["sample[green]"]
    frames = np.load(sample.dir / "frames.npy")
    mask = np.load(sample.dir / "edit_mask.npy")
    assert frames.shape == (3, 32, 32, 3) and mask.shape == (3, 32, 32) and mask.dtype == bool
    metrics = json.loads((refs["evaluate[green]"].dir / "metrics.json").read_text())
    assert set(metrics) == {"psnr", "masked_psnr"}

    # same spec again: everything cached; one prompt changed: only its sample + evaluate
    assert _run(path, store)[0] == []
    path.write_text(path.read_text().replace("a large blue circle", "a large orange circle"))
    assert sorted(_run(path, store)[0]) == ["evaluate[blue]", "sample[blue]"]


TOY_SWAP = """\
method: videop2p
input:
  toy:
    objects: [{shape: circle, colour: red, size: large, motion: right}]
    background: {kind: plain, colour: white}
    frames: 6
    seed: 3
model: {profile: toy}
params:
  source_prompt: a large red circle moving right over a plain white background
  finetune: {steps: 10, lr: 1.0e-4}
  inversion: {steps: 10, inner_steps: 3, lr: 0.1}
  guidance_scale: 5.0
  cross_replace: 0.4
  blend: {source_words: [red], target_words: [green], threshold: 0.3, start: 0.2}
evaluate:
  metrics: [toy_edit_success, toy_unedited_psnr]
  mask: truth
edits:
  - {name: green, prompt: a large green circle moving right over a plain white background}
"""


def test_word_swap_on_toy_models_recolours_the_circle(project: Path, tmp_path: Path) -> None:
    """Paper defaults (decoupled guidance, replace, local blend) at toy scale, judged against the truth."""
    import torch

    torch.set_num_threads(1)
    computed, refs = _run(_write(project, TOY_SWAP), tmp_path / "swapstore")
    assert "sample[green]" in computed
    metrics = json.loads((refs["evaluate[green]"].dir / "metrics.json").read_text())
    assert metrics["toy_edit_colour"] == 1 and metrics["toy_edit_success"] == 1, metrics
    # measured 24.1 dB; without attention control (T2S + DDIM) the background drops to ~17 dB
    # (benchmarks/RESULTS.md, Video-P2P), so 20 dB is the "rest kept" bar used there
    assert metrics["toy_unedited_psnr"] > 20, metrics
