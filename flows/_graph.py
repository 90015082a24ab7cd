"""Walk a plan: submit one task per node, in graph order, then collect.

Shared by the `edit` and `batch` flows. Reads top to bottom:
1. load and validate the specs, 2. plan (keys + cache status),
3. submit every node with its upstream futures, 4. wait,
5. copy outputs into place, 6. publish to the dashboard, 7. record in DVC.

On the dashboard (recut.artifacts): the flow run is named and tagged from its specs once planned, its
stages' lines and recut's warnings are its logs (recut.prefect_env.ship_logs), cached stages end in the
Cached state (tasks/_stage.py), and every output gets a markdown artifact beside the table of all.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from prefect import allow_failure
from prefect.exceptions import TerminationSignal

from recut import stop
from recut.outputs import finish_run
from recut.plan import build_plan, default_store_root
from recut.runner import StageResult
from recut.spec import load_spec
from recut.store import Store
from tasks import TASKS
from tasks._stage import RunContext

log = logging.getLogger("recut.run")


def run_specs(
    spec_paths: list[str], force: list[str] | None = None, store_root: str | None = None, dvc: bool = True
) -> dict[str, Any]:
    t0 = time.perf_counter()
    # 1. validate (the CLI did already; a dashboard-triggered run starts here)
    specs = [load_spec(p) for p in spec_paths]
    store = Store(store_root or default_store_root(spec_paths[0]))
    # 2. plan
    plan = build_plan(specs, store, set(force or ()))
    _name_run(plan, force)
    todo = sum(1 for n in plan.ordered() if not n.cached)
    log.info(
        "%d stage(s): %d in the store, %d to compute; store %s",
        len(plan.nodes),
        len(plan.nodes) - todo,
        todo,
        store.root,
    )
    run = RunContext(str(store.root))
    # 3. submit, upstream futures as inputs (Prefect draws the edges); a failed upstream reaches its
    #    dependants as its exception (allow_failure), so they end at once and everything else runs on
    futures: dict[str, Any] = {}
    for node in plan.ordered():
        upstream = {name: allow_failure(futures[key]) for name, key in node.upstream.items()}
        task = TASKS[node.kind].with_options(task_run_name=node.label)
        futures[node.key] = task.submit(node, upstream, run)
    # 4. wait: every node's result or exception
    done = _wait(futures)
    results: dict[str, StageResult] = {k: r for k, r in done.items() if isinstance(r, StageResult)}
    errors = {k: r for k, r in done.items() if not isinstance(r, StageResult)}
    # 5. outputs of every edit whose stages all succeeded, 6. the dashboard, 7. DVC, once, from the driver
    refs = {k: r.ref for k, r in results.items()}
    summary = finish_run(plan, results, errors, store, dvc, t0, lambda s: _publish(s, plan, refs))
    for s in summary["specs"]:
        log.info("%s: %d output(s) in %s", Path(s["spec"]).name, len(s["outputs"]), s["output_dir"])
    for f in summary["failed"]:
        log.error("FAILED %s [%s]: stage %s: %s", Path(f["spec"]).name, f["output"], f["stage"], f["error"])
    log.info("dvc: %s", summary["dvc"])
    return summary


def _wait(futures: dict[str, Any]) -> dict[str, Any]:
    """Each future's result or exception. Interrupted (SIGTERM, which Prefect raises here as
    TerminationSignal; Ctrl-C), the stages in flight on the workers are cancelled first: Prefect's task
    runner waits for its running tasks on the way out, and they wait on their stages."""
    try:
        return {k: f.result(raise_on_failure=False) for k, f in futures.items()}
    except (KeyboardInterrupt, SystemExit, TerminationSignal):
        stop.request()
        raise


def _name_run(plan: Any, force: list[str] | None) -> None:
    """Name and tag the current flow run from its specs (recut.artifacts.run_name_and_tags), keeping the
    tags it has (a deployment's); and send recut's log lines to the server from here on."""
    from prefect.context import FlowRunContext

    from recut.artifacts import run_name_and_tags
    from recut.prefect_env import ship_logs

    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return
    try:
        ship_logs()
    except Exception:  # noqa: BLE001  (no logs on the server is no reason to stop a run)
        pass
    name, tags = run_name_and_tags(plan, force)
    tags = sorted(set(ctx.flow_run.tags) | set(tags))
    try:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            client.update_flow_run(ctx.flow_run.id, name=name, tags=tags)
        ctx.flow_run.name, ctx.flow_run.tags = name, tags
    except Exception as exc:  # noqa: BLE001
        log.warning("could not name the flow run %r: %s: %s", name, type(exc).__name__, exc)


def _publish(summaries: list[dict[str, Any]], plan: Any = None, refs: dict[str, Any] | None = None) -> None:
    """The table of every output, and (with a server to show them) one markdown artifact per output."""
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
    if plan is None or refs is None:
        return
    try:
        from prefect.settings import get_current_settings

        if not get_current_settings().api.url:  # ephemeral: a temporary server nobody looks at
            return
        from recut.artifacts import publish_outputs

        keys = publish_outputs(plan, refs, summaries)
        log.info("artifacts: %s", ", ".join(keys) or "none")
    except Exception as exc:  # noqa: BLE001
        log.warning("output artifacts not published: %s: %s", type(exc).__name__, exc)
