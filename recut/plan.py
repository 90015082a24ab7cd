"""From validated specs to a deduplicated stage graph with cache keys (pure).

For every sweep point and every edit of a spec, the engine's stages are
instantiated against a *resolved view* of the spec (params merged with the
edit's overrides and the sweep point).  Each stage instance gets a key from
the values it declares it reads plus its upstream keys; instances with the
same key are one node.  That is how four edits share one finetune, and how a
sweep over sampling strength shares everything upstream of sampling.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recut.engine import Stage, file_param_slots, spec_file
from recut.keys import cache_key, file_digest
from recut.models import PROFILES, ResolvedModel, resolve
from recut.registry import engine_class, lpips_weights, metrics, toy_scenes
from recut.runner import Job
from recut.spec import SpecBase, find_project_root
from recut.store import ArtifactRef, Store
from recut.sweep import edit_params_at, sweep_points


@dataclass(frozen=True)
class Instance:
    """One output of a spec: an edit at a sweep point."""

    spec: str
    edit: str
    point: tuple[tuple[str, Any], ...]

    @property
    def label(self) -> str:
        if not self.point:
            return self.edit
        pts = ",".join(f"{k.split('.')[-1]}={v}" for k, v in self.point)
        return f"{self.edit}[{pts}]"

    @property
    def slug(self) -> str:
        if not self.point:
            return self.edit
        pts = "__".join(f"{k.split('.')[-1]}-{v}" for k, v in self.point)
        return f"{self.edit}__{pts}".replace("/", "_")


@dataclass
class Node:
    stage: Stage
    key: str
    method: str
    reads: dict[str, Any]
    upstream: dict[str, str]
    instances: list[Instance] = field(default_factory=list)
    model: ResolvedModel | None = None
    media: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    cached: bool = False
    forced: bool = False

    @property
    def kind(self) -> str:
        return self.stage.kind

    def job(self, inputs: dict[str, ArtifactRef], store_root: str) -> Job:
        """The worker's view of this node, given its upstream artifacts."""
        return Job(
            method=self.method,
            stage=self.stage.name,
            kind=self.kind,
            key=self.key,
            reads=self.reads,
            media=self.media,
            model=self.model,
            inputs=inputs,
            force=self.forced,
            store_root=store_root,
            options=self.options,
        )

    @property
    def short(self) -> str:
        return self.key[:12]

    @property
    def label(self) -> str:
        if not self.stage.per_edit and len({i.spec for i in self.instances}) <= 1:
            shared = {i.label for i in self.instances}
            if len(shared) > 1:
                return f"{self.stage.name} (shared by {len(shared)})"
        return f"{self.stage.name}[{self.instances[0].label}]" if self.stage.per_edit else self.stage.name


@dataclass
class SpecPlan:
    spec: SpecBase
    path: str
    #: instance -> {stage name -> key}
    chains: dict[Instance, dict[str, str]]
    output_dir: Path


@dataclass
class Plan:
    nodes: dict[str, Node]
    specs: list[SpecPlan]

    def ordered(self) -> list[Node]:
        return list(self.nodes.values())

    def downstream(self, key: str) -> set[str]:
        out: set[str] = set()
        frontier = {key}
        while frontier:
            nxt = {n.key for n in self.nodes.values() if set(n.upstream.values()) & frontier}
            nxt -= out
            out |= nxt
            frontier = nxt
        return out


# --------------------------------------------------------------------------- views


def _input_view(spec: SpecBase) -> dict[str, Any]:
    inp = spec.input
    if inp.toy is not None:
        media = [toy_scenes().toy_digest(inp.toy)]
    else:
        media = [file_digest(p) for p in inp.media]
    return {
        "kind": inp.kind,
        "media": media,
        "toy": inp.toy.model_dump(mode="json") if inp.toy is not None else None,
        "frames": inp.frames.model_dump(mode="json"),
        "size": inp.size.model_dump(mode="json") if inp.size else None,
    }


def resolved_view(spec: SpecBase, edit_index: int, point: dict[str, Any], model: ResolvedModel) -> dict[str, Any]:
    """The nested dict that stage ``reads`` paths are looked up in."""
    edit = spec.edits[edit_index]
    seed = point.get("seed", spec.seed)
    params = edit_params_at(spec, edit_index, point)
    # re-validate so defaults/coercions apply exactly as the engine will see them
    params = type(spec.params).model_validate(params).model_dump(mode="json")  # type: ignore[attr-defined]
    files = _file_params(spec, params)
    return {
        "input": _input_view(spec),
        "model": {"identity": model.identity, "dtype": model.dtype},
        "seed": seed,
        "params": params,
        "edit": {
            "name": spec.edit_names()[edit_index],
            "prompt": edit.prompt,
            "negative_prompt": edit.negative_prompt,
        },
        "evaluate": _evaluate_view(spec),
        # Values stages receive but that never enter a key (machine-specific locations).
        "runtime": {**_runtime_view(spec), "files": files},
    }


def _file_params(spec: SpecBase, params: dict[str, Any]) -> dict[str, str]:
    """Replace each file path among ``params`` (the engine's ``file_params``) by its content digest, in
    place; returns ``{dotted path: resolved path}``."""
    files: dict[str, str] = {}
    for pattern in engine_class(spec.method).file_params:  # type: ignore[attr-defined]
        for cur, leaf, dotted in list(file_param_slots(params, pattern)):
            value = cur[leaf]
            if isinstance(value, str):
                path = spec_file(spec.source, value)
                cur[leaf] = "sha256:" + file_digest(path)
                files[dotted] = str(path)
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                paths = [spec_file(spec.source, v) for v in value]
                cur[leaf] = ["sha256:" + file_digest(p) for p in paths]
                for i, p in enumerate(paths):
                    files[f"{dotted}.{i}"] = str(p)
    return files


def _clip_model(spec: SpecBase) -> ResolvedModel | None:
    known = metrics()
    ev = spec.evaluation
    if not any("clip" in known[m].needs for m in ev.metrics if m in known):
        return None
    if ev.clip is not None:
        return ev.clip.resolve()
    if "toy" in PROFILES:
        return resolve(profile="toy")
    return None


def _evaluate_view(spec: SpecBase) -> dict[str, Any]:
    ev = spec.evaluation
    clip = _clip_model(spec)
    mask = ev.mask if isinstance(ev.mask, str) else "file:" + file_digest(ev.mask)
    lpips = _lpips_weights(spec)
    return {
        "metrics": list(ev.metrics),
        "clip": clip.identity if clip else None,
        "mask": mask,
        "trajectory": ev.trajectory.model_dump(mode="json") if ev.trajectory is not None else None,
        # LPIPS weights by content: weights that appear later turn a skipped LPIPS into a computed one.
        "lpips": ("sha256:" + file_digest(lpips) if lpips else "absent") if "lpips" in ev.metrics else None,
    }


def _lpips_weights(spec: SpecBase) -> Path | None:
    return lpips_weights()[0] if "lpips" in spec.evaluation.metrics else None


def _runtime_view(spec: SpecBase) -> dict[str, Any]:
    ev = spec.evaluation
    clip = _clip_model(spec)
    return {
        "clip": clip.location("clip") if clip else None,
        "mask_file": None if isinstance(ev.mask, str) else str(ev.mask),
        "lpips_weights": str(w) if (w := _lpips_weights(spec)) else None,
    }


def lookup(view: dict[str, Any], dotted: str) -> Any:
    cur: Any = view
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise KeyError(f"stage reads {dotted!r}, which the resolved spec does not have")
        cur = cur[part]
    return cur


# --------------------------------------------------------------------------- planning


def default_store_root(spec_path: str) -> str:
    """``$RECUT_STORE``, else ``<project root of the spec>/.recut/store``."""
    env = os.environ.get("RECUT_STORE")
    if env:
        return str(Path(env).resolve())
    return str(find_project_root(Path(spec_path).resolve().parent) / ".recut" / "store")


def default_output_dir(spec: SpecBase) -> Path:
    if spec.outputs.dir is not None:
        return spec.outputs.dir
    src = spec.source
    root = spec.root or Path.cwd()
    assert src is not None
    try:
        rel = src.relative_to(root / "specs")
    except ValueError:
        try:
            rel = src.relative_to(root)
        except ValueError:
            rel = Path(src.name)
    return root / "outputs" / rel.with_suffix("")


def build_plan(
    specs: list[SpecBase],
    store: Store | None = None,
    force: set[str] | None = None,
) -> Plan:
    """Instantiate every spec's stages, dedupe by key, mark cache status."""
    force = set(force or ())
    nodes: dict[str, Node] = {}
    spec_plans: list[SpecPlan] = []
    for spec in specs:
        eng = engine_class(spec.method)  # type: ignore[attr-defined]
        known = {s.name for s in eng.stages}
        unknown = force - known - {"all"}
        if unknown and len(specs) == 1:
            raise ValueError(
                f"--force {sorted(unknown)[0]!r}: method {eng.name!r} has stages "
                f"{', '.join(s.name for s in eng.stages)}"
            )
        model = spec.model.resolve()
        chains: dict[Instance, dict[str, str]] = {}
        spath = str(spec.source)
        for point in sweep_points(spec):
            for ei, ename in enumerate(spec.edit_names()):
                view = resolved_view(spec, ei, point, model)
                inst = Instance(spath, ename, tuple(point.items()))
                chain: dict[str, str] = {}
                for st in eng.stages:
                    reads = {r: lookup(view, r) for r in st.reads}
                    upstream = {u: chain[u] for u in st.after}
                    key = cache_key(st.name, st.version, reads, upstream)
                    chain[st.name] = key
                    node = nodes.get(key)
                    if node is None:
                        node = Node(
                            stage=st,
                            key=key,
                            method=eng.name,
                            reads=reads,
                            upstream=upstream,
                            model=model if st.uses_model else None,
                            media=[str(p) for p in spec.input.media] if st.kind == "preprocess" else [],
                            options={o: lookup(view, o) for o in st.options},
                        )
                        nodes[key] = node
                    if inst not in node.instances:
                        node.instances.append(inst)
                chains[inst] = chain
        spec_plans.append(SpecPlan(spec, spath, chains, default_output_dir(spec)))

    plan = Plan(nodes, spec_plans)
    forced: set[str] = set()
    for n in nodes.values():
        if "all" in force or n.stage.name in force:
            forced.add(n.key)
            forced |= plan.downstream(n.key)
    for n in nodes.values():
        n.forced = n.key in forced
        n.cached = (not n.forced) and store is not None and store.has(n.kind, n.key)
    return plan
