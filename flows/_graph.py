"""Walk a plan: submit one task per node, in graph order, then collect.

Shared by the `edit` and `batch` flows. Reads top to bottom:
1. load and validate the specs, 2. plan (keys + cache status),
3. submit every node with its upstream futures, 4. wait,
5. copy outputs into place, 6. publish to the dashboard, 7. record in DVC.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import allow_failure

from recut import dvc as dvc_glue
from recut.outputs import write_outputs
from recut.plan import build_plan, default_store_root
from recut.runner import StageResult
from recut.spec import load_spec
from recut.store import Store
from tasks import TASKS
from tasks._stage import RunContext, UpstreamFailed


def run_specs(
    spec_paths: list[str], force: list[str] | None = None, store_root: str | None = None, dvc: bool = True
) -> dict[str, Any]:
    t0 = time.perf_counter()
    # 1. validate (the CLI did already; a dashboard-triggered run starts here)
    specs = [load_spec(p) for p in spec_paths]
    store = Store(store_root or default_store_root(spec_paths[0]))
    # 2. plan
    plan = build_plan(specs, store, set(force or ()))
    run = RunContext(str(store.root))
    # 3. submit, upstream futures as inputs (Prefect draws the edges); a failed upstream reaches its
    #    dependants as its exception (allow_failure), so they end at once and everything else runs on
    futures: dict[str, Any] = {}
    for node in plan.ordered():
        upstream = {name: allow_failure(futures[key]) for name, key in node.upstream.items()}
        task = TASKS[node.kind].with_options(task_run_name=node.label)
        futures[node.key] = task.submit(node, upstream, run)
    # 4. wait: every node's result or exception
    done = {k: f.result(raise_on_failure=False) for k, f in futures.items()}
    results: dict[str, StageResult] = {k: r for k, r in done.items() if isinstance(r, StageResult)}
    errors = {k: r for k, r in done.items() if not isinstance(r, StageResult)}
    # 5. outputs of every edit whose stages all succeeded
    refs = {k: r.ref for k, r in results.items()}
    stages = [results[n.key].to_json() for n in plan.ordered() if n.key in results]
    failed = [
        _failure(sp.path, inst.label, chain, plan, errors)
        for sp in plan.specs
        for inst, chain in sp.chains.items()
        if set(chain.values()) & errors.keys()
    ]
    spec_summaries = write_outputs(plan, refs, stages, failed)
    # 6. dashboard
    _publish(spec_summaries)
    # 7. DVC, once, from the driver
    try:
        dvc_note = dvc_glue.record(store.root, plan) if dvc else "skipped (--no-dvc)"
    except Exception as exc:  # noqa: BLE001
        dvc_note = f"FAILED: {type(exc).__name__}: {exc}"
    return {
        "store": str(store.root),
        "seconds": round(time.perf_counter() - t0, 3),
        "computed": sum(1 for s in stages if s["status"] == "computed"),
        "cached": sum(1 for s in stages if s["status"] == "cached"),
        "stages": stages,
        "specs": spec_summaries,
        "failed": failed,
        "dvc": dvc_note,
    }


def _failure(spec: str, output: str, chain: dict[str, str], plan: Any, errors: dict[str, Any]) -> dict[str, str]:
    """The first stage of ``chain`` that failed (not one that only did not run) and why."""
    bad = [name for name, key in chain.items() if key in errors]
    first = next((n for n in bad if not isinstance(errors[chain[n]], UpstreamFailed)), bad[0])
    exc = errors[chain[first]]
    return {"spec": spec, "output": output, "stage": first, "error": f"{type(exc).__name__}: {exc}"}


def _publish(summaries: list[dict[str, Any]]) -> None:
    from prefect.artifacts import create_table_artifact  # local: looked up when called (a test replaces it)

    rows = []
    for s in summaries:
        for slug, o in s["outputs"].items():
            row = {"spec": Path(s["spec"]).name, "output": slug}
            row.update({k: round(v, 4) if isinstance(v, float) else v for k, v in o["metrics"].items()})
            row["files"] = ", ".join(o["files"].values())
            rows.append(row)
    try:
        create_table_artifact(table=rows, key="recut-outputs", description="Outputs and metrics of this run")
    except Exception:  # noqa: BLE001
        pass
