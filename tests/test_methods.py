"""A smoke test for every registered method, as nerfstudio has: a new method gets coverage with no new test.

For each method: every example spec of it validates and plans, and each runs end to end, shrunk to
the method's ``smoke_profile`` (``tiny-random`` unless it needs more), its ``smoke_params``, one edit,
the first value of each sweep and 4 frames, through the StageRunner (no Prefect, no Ray). A second
plan of the same spec is all cached. And the contract a stage runs under: it reads only what it declares.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import yaml

from recut.engine import Engine, Stage, StageContext, StageView, UndeclaredRead, file_param_slots
from recut.outputs import materialize
from recut.plan import build_plan
from recut.registry import methods
from recut.runner import StageRunner, run_plan
from recut.spec import load_spec
from recut.store import Store

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "specs" / "examples"


def _examples(method: str) -> list[Path]:
    return [p for p in sorted(EXAMPLES.glob("*.yaml")) if yaml.safe_load(p.read_text()).get("method") == method]


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _shrunk(example: Path, engine: type[Engine], root: Path) -> Path:
    """The example spec made seconds-long, written into ``root`` with its media paths made absolute."""
    raw = yaml.safe_load(example.read_text())
    inp = raw["input"]
    for key in ("video", "image"):
        if key in inp:
            inp[key] = str((example.parent / inp[key]).resolve())
    if "images" in inp:
        inp["images"] = [str((example.parent / p).resolve()) for p in inp["images"]]
    frames = inp.setdefault("frames", {})
    if "toy" not in inp and "image" not in inp and "images" not in inp:
        frames["count"] = min(int(frames.get("count") or 4), 4)
    raw["model"] = {"profile": engine.smoke_profile}
    raw["params"] = _merge(raw.get("params") or {}, engine.smoke_params)
    for pattern in engine.file_params:  # paths in params are relative to the spec: make them absolute
        for cur, leaf, _ in file_param_slots(raw["params"], pattern):
            if isinstance(cur[leaf], str):
                cur[leaf] = str((example.parent / cur[leaf]).resolve())
            else:
                cur[leaf] = [str((example.parent / v).resolve()) for v in cur[leaf]]
    raw["edits"] = raw["edits"][:1]
    raw["edits"][0].pop("params", None)
    raw["sweep"] = {k: v[:1] for k, v in (raw.get("sweep") or {}).items()}
    raw["outputs"] = {"dir": str(root / "out" / example.stem), "formats": ["mp4", "npy"]}
    raw["allow_outside_root"] = True
    path = root / "specs" / example.name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.mark.parametrize("method", sorted(methods()))
def test_every_method_runs_its_examples_end_to_end(method: str, tmp_path: Path) -> None:
    engine = methods()[method].engine
    examples = _examples(method)
    assert examples, f"method {method!r} has no example spec under specs/examples/"
    (tmp_path / ".git").mkdir()
    store = Store(tmp_path / "store")
    runner = StageRunner()
    for example in examples:
        # 1. the example as committed validates and plans
        plan = build_plan([load_spec(example)], store)
        assert plan.ordered(), example.name
        assert {n.stage.name for n in plan.ordered()} <= {s.name for s in engine.stages}
        # 2. shrunk, it runs end to end through the StageRunner
        spec = load_spec(_shrunk(example, engine, tmp_path))
        plan = build_plan([spec], store)
        refs = run_plan(plan, store.root, runner)
        kinds = {n.stage.name: n.kind for n in plan.ordered()}
        summary = materialize(plan.specs[0], refs, kinds)
        assert summary["outputs"], example.name
        for slug, out in summary["outputs"].items():
            frames = np.load(Path(out["files"]["npy"]))
            assert frames.ndim == 4 and frames.shape[-1] == 3 and frames.dtype == np.uint8, (example.name, slug)
            assert Path(out["files"]["mp4"]).stat().st_size > 0
            assert set(spec.evaluation.metrics) <= set(out["metrics"]), (example.name, sorted(out["metrics"]))
        # 3. planned again, every stage is a cache hit
        again = build_plan([load_spec(spec.source)], store)
        assert all(n.cached for n in again.ordered()), [n.label for n in again.ordered() if not n.cached]
    assert sum(e.loads for e in runner.engines.values()) <= len(runner.engines), runner.loads


# --------------------------------------------------------------------------- the stage view


class _Leaky(Engine):
    name = "leaky"
    description = "reads a value it does not declare"
    params_model = dict  # type: ignore[assignment]
    stages: ClassVar[tuple[Stage, ...]] = (
        Stage("sample", "sample", "1", reads=("params.strength", "params.inversion")),
    )

    def sample(self, ctx: StageContext) -> dict[str, Any]:
        return {"steps": ctx.values["params.steps"]}


def _ctx(values: dict[str, Any], tmp_path: Path) -> StageContext:
    return StageContext(values=values, inputs={}, out_dir=tmp_path)


def test_a_stage_that_reads_an_undeclared_key_fails(tmp_path: Path) -> None:
    values = {"params.strength": 0.5, "params.inversion": {"steps": 3}, "params.steps": 10}
    with pytest.raises(UndeclaredRead, match=r"stage 'sample' reads 'params.steps', which it does not declare"):
        _Leaky().run_stage("sample", _ctx(values, tmp_path))


def test_the_view_reads_below_a_declared_path_and_holds_no_defaults() -> None:
    view = StageView(
        "sample", {"params.strength": 0.5, "params.inversion": {"steps": 3}}, ("params.strength", "params.inversion")
    )
    assert view["params.inversion.steps"] == 3 and view.get("params.strength") == 0.5
    assert set(view) == {"params.strength", "params.inversion"}
    with pytest.raises(UndeclaredRead, match="has no 'lr'"):
        view["params.inversion.lr"]
    with pytest.raises(TypeError, match="holds every declared value"):
        view.get("params.strength", 0.6)
    with pytest.raises(KeyError, match=r"no value for declared params\.eta"):
        StageView("sample", {}, ("params.eta",))


def test_every_stage_declares_what_the_planner_can_give() -> None:
    """Each registered stage's reads and options resolve in a planned spec (a declared read the planner
    cannot fill would fail every run)."""
    for name, entry in methods().items():
        examples = _examples(name)
        plan = build_plan([load_spec(examples[0])])
        planned = {n.stage.name for n in plan.ordered()}
        for node in plan.ordered():
            st = node.stage
            assert set(st.reads) == set(node.reads) and set(st.options) == set(node.options), (name, st.name)
        assert planned == {s.name for s in entry.engine.stages}, (name, planned)
