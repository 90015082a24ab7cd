"""Execute one planned stage against the store (pure: no Prefect, no Ray).

Workers call :class:`StageRunner` inside Ray actors; the plain-script benchmark
and the unit tests call it directly.  A runner keeps one engine instance per
(method, model identity), so models load once per process.
"""

from __future__ import annotations

import errno
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recut import stop
from recut.engine import Engine, ProgressFn, StageContext
from recut.models import ResolvedModel
from recut.registry import engine_class
from recut.store import ArtifactRef, Quarantined, Store


@dataclass
class Job:
    """What a worker needs to compute one node. Small and picklable."""

    method: str
    stage: str
    kind: str
    key: str
    reads: dict[str, Any]
    media: list[str] = field(default_factory=list)
    model: ResolvedModel | None = None
    inputs: dict[str, ArtifactRef] = field(default_factory=dict)
    force: bool = False
    store_root: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def model_identity(self) -> str:
        return self.model.identity if self.model is not None else ""


class StageRunner:
    def __init__(self, device: str = "cpu"):
        self.device = device
        self.engines: dict[tuple[str, str], Engine] = {}
        self.calls = 0
        #: Corrupt cached artifacts this runner found, moved aside and recomputed.
        self.quarantined: list[Quarantined] = []

    def engine(self, method: str, model: ResolvedModel | None) -> Engine:
        ident = model.identity if model is not None else ""
        k = (method, ident)
        if k not in self.engines:
            self.engines[k] = engine_class(method)(model=model, device=self.device)
        return self.engines[k]

    @property
    def loads(self) -> dict[str, int]:
        return {f"{m}:{i[:12] or '-'}": e.loads for (m, i), e in self.engines.items()}

    def run_reporting(self, job: Job, on_progress: Callable[[str, int, int], None] | None = None) -> ArtifactRef:
        """:meth:`run` with the worker pool's signature: ``on_progress(key, step, total)``. In process (the
        local executor), a stop request (:mod:`recut.stop`) ends the stage at its next step."""

        def report(i: int, n: int) -> None:
            stop.check()
            if on_progress is not None:
                on_progress(job.key, i, n)

        return self.run(job, report)

    def run(self, job: Job, progress: ProgressFn | None = None) -> ArtifactRef:
        """Compute ``job`` unless committed (and not forced); return its ref."""
        self.calls += 1
        store = Store(job.store_root)
        if not job.force:
            hit = store.get(job.kind, job.key)  # a corrupt entry is quarantined and reads as a miss
            self.quarantined.extend(store.quarantined)
            if hit is not None:
                return hit
        eng = self.engine(job.method, job.model)
        tmp = store.begin(job.key)
        t0 = time.perf_counter()
        try:
            values = {**job.options, **job.reads}
            values["_media"] = list(job.media)
            ctx = StageContext(
                values=values,
                inputs={name: ref.dir for name, ref in job.inputs.items()},
                out_dir=tmp,
                progress=progress or (lambda i, n: None),
                seed=int(job.reads.get("seed", 0) or 0),
            )
            meta = eng.run_stage(job.stage, ctx)
            if job.kind == "sample":
                meta = finish_video(tmp, meta, job.inputs)
            seconds = time.perf_counter() - t0
            if job.force:
                return store.replace(tmp, job.kind, job.key, meta, job.stage, seconds)
            return store.commit(tmp, job.kind, job.key, meta, job.stage, seconds)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if exc.errno == errno.ENOSPC:
                raise OSError(
                    errno.ENOSPC,
                    f"no space left on the device of the store {store.root} while writing stage {job.stage!r} "
                    f"[{job.key[:12]}]; nothing of it was committed: free space and run again (the completed "
                    "stages are kept)",
                ) from exc
            raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


@dataclass
class StageResult:
    key: str
    stage: str
    kind: str
    label: str
    status: str  # "computed" | "cached"
    #: Compute time of the stage itself (from the artifact); 0 for a cache hit.
    seconds: float
    ref: ArtifactRef
    instances: list[str] = field(default_factory=list)
    #: Time the task took end to end, including waiting for a free worker.
    wall_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "kind": self.kind,
            "label": self.label,
            "key": self.key,
            "status": self.status,
            "seconds": round(self.seconds, 4),
            "wall_seconds": round(self.wall_seconds, 4),
            "artifacts": {name: str(self.ref.file(name)) for name in sorted(self.ref.files)},
            "outputs": self.instances,
        }


class StageFailed(RuntimeError):
    """A stage raised; the message names the spec(s), the output(s) and the stage."""


class UpstreamFailed(RuntimeError):
    """A stage did not run because a stage it reads failed."""


def where(node: Any) -> str:
    """``spec.yaml [edit, ...]``: the specs and outputs a node serves."""
    by_spec: dict[str, list[str]] = {}
    for inst in node.instances:
        by_spec.setdefault(Path(inst.spec).name, []).append(inst.label)
    return "; ".join(f"{spec} [{', '.join(labels)}]" for spec, labels in by_spec.items())


#: ``compute(job, on_progress)``: a worker pool's ``run`` or :meth:`StageRunner.run_reporting`.
Compute = Callable[[Job, Callable[[str, int, int], None]], ArtifactRef]


def serve_node(node: Any, upstream: dict[str, Any], store_root: str, compute: Compute) -> StageResult:
    """Serve ``node`` (a :class:`recut.plan.Node`) from the store or compute it, reporting to the
    progress sink. ``upstream`` values are :class:`StageResult`, or the exception of an upstream stage
    that failed, in which case this stage does not run and raises :class:`UpstreamFailed`; a stage that
    raises becomes :class:`StageFailed`, naming the specs, outputs and stage. The stage tasks of the
    flows and the in-process run (:mod:`recut.launch`) both serve every node through here."""
    from recut import progress  # local: a cheap module, but the core's progress sink is the caller's

    failed = [name for name, res in upstream.items() if isinstance(res, BaseException)]
    if failed:
        raise UpstreamFailed(f"{where(node)}: stage {node.stage.name!r} not run: stage {failed[0]!r} failed")
    sink = progress.sink()
    store = Store(store_root)
    t0 = time.perf_counter()
    sink.start(node.key, node.label, node.kind)
    hit = None if node.forced else store.get(node.kind, node.key)
    if hit is not None:
        status, ref = "cached", hit
    else:
        job = node.job({name: res.ref for name, res in upstream.items()}, store_root)
        try:
            ref = compute(job, sink.step)
        except Exception as exc:
            sink.done(node.key, "FAILED", time.perf_counter() - t0)
            raise StageFailed(f"{where(node)}: stage {node.stage.name!r} failed: {type(exc).__name__}: {exc}") from exc
        status = "computed"
    seconds = ref.seconds if status == "computed" else 0.0
    sink.done(node.key, status, seconds)
    return StageResult(
        node.key,
        node.stage.name,
        node.kind,
        node.label,
        status,
        seconds,
        ref,
        [i.label for i in node.instances],
        time.perf_counter() - t0,
    )


def run_plan(
    plan: Any,
    store_root: str | Path,
    runner: StageRunner | None = None,
    on_node: Callable[[Any, ArtifactRef, float], None] | None = None,
) -> dict[str, ArtifactRef]:
    """Every node of ``plan`` (a :class:`recut.plan.Plan`) in graph order on one in-process runner, no
    Prefect and no Ray: the flows' walk for tests, benchmarks and tools. ``{key: ref}``;
    ``on_node(node, ref, seconds)`` after each node."""
    runner = runner or StageRunner()
    refs: dict[str, ArtifactRef] = {}
    for node in plan.ordered():
        t0 = time.perf_counter()
        refs[node.key] = runner.run(node.job({n: refs[k] for n, k in node.upstream.items()}, str(store_root)))
        if on_node is not None:
            on_node(node, refs[node.key], time.perf_counter() - t0)
    return refs


def finish_video(out_dir: Path, meta: dict[str, Any], inputs: dict[str, ArtifactRef]) -> dict[str, Any]:
    """Every sample artifact holds frames.npy (lossless) and video.mp4."""
    from recut import video  # local: recut.video pulls in av, and `recut plan` imports this module

    frames_path = out_dir / "frames.npy"
    if not frames_path.exists():
        raise RuntimeError("a sample stage must write frames.npy")
    frames = video.load_frames(frames_path)
    fps = meta.get("fps")
    if fps is None and "preprocess" in inputs:
        info = json.loads((inputs["preprocess"].dir / "info.json").read_text())
        fps = info.get("fps", 8.0)
    fps = float(fps or 8.0)
    if not (out_dir / "video.mp4").exists():
        video.write_mp4(out_dir / "video.mp4", frames, fps)
    meta = dict(meta)
    meta.setdefault("fps", fps)
    meta.setdefault("frames", int(frames.shape[0]))
    return meta
