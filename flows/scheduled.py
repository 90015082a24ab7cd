"""The `scheduled` flow, which every schedule's deployment runs, and the deployments themselves.

`recut schedule` registers one deployment of :func:`scheduled` per schedule of a schedules file
(:func:`register`); `recut serve` registers them and runs them with Prefect's own runner
(:func:`serve`). Each run of :func:`scheduled` reads top to bottom:
1. expand the schedule's globs now (a spec added since registration is picked up),
2. validate each spec on its own: one that does not validate is reported and left out,
3. run the others as one batch (the `recut-batch` flow, as a subflow),
4. report: the run ends Failed, naming each problem, if a spec was invalid or an output failed.
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger
from prefect.states import Failed

from recut.schedules import FLOW_NAME, TAG, Schedule, Schedules, expand, known_stages, unique
from recut.spec import SpecBase, SpecError, load_spec

#: Interval schedules are aligned to this instant (in the schedule's time zone), so `1h` fires on the
#: hour and registering again does not move the runs.
ANCHOR = datetime.datetime(2000, 1, 1)


def _say(line: str, warning: bool = False) -> None:
    """A line on `recut serve`'s console (the runner streams a run's output) and in the run's log."""
    print(line, file=sys.stderr if warning else sys.stdout, flush=True)
    try:
        logger = get_run_logger()
        (logger.warning if warning else logger.info)(line)
    except Exception:  # noqa: BLE001  (no run context: called outside a flow)
        pass


@flow(name=FLOW_NAME, flow_run_name="{schedule}", persist_result=False, log_prints=False)
def scheduled(
    schedule: str,
    specs: list[str],
    base_dir: str,
    force: list[str] | None = None,
    store: str | None = None,
    dvc: bool = True,
    exclude: list[str] | None = None,
) -> Any:
    """Run the specs that ``specs`` (paths or globs relative to ``base_dir``) match now, as one batch."""
    from flows.batch import batch
    from recut.workers import shutdown_pool

    # 1. the globs, now
    matches = expand(specs, base_dir, exclude or ())
    paths = unique(matches)
    for pattern, hits in matches.items():
        if not hits:
            _say(f"{schedule}: {pattern!r} matches no spec now")
    # 2. each spec on its own
    valid: list[SpecBase] = []
    problems: list[str] = []
    for p in paths:
        try:
            valid.append(load_spec(p, emit_warnings=False))
        except SpecError as exc:
            problems.append(f"{p}: does not validate; not run")
            for issue in exc.issues:
                _say(f"{schedule}: {issue}", warning=True)
    if not valid:
        _say(f"{schedule}: no spec to run ({len(paths)} matched, {len(problems)} invalid)")
        return Failed(message="; ".join(problems)) if problems else {"specs": [], "failed": []}
    # a stage none of these specs has is left out (a schedule over a folder may see other methods now)
    stages = set(known_stages(valid)) | {"all"}
    unknown = [f for f in force or [] if f not in stages]
    if unknown:
        _say(f"{schedule}: force {unknown}: not a stage of these specs' methods; ignored", warning=True)
    # 3. one batch
    _say(f"{schedule}: running {len(valid)} spec(s): {', '.join(Path(str(s.source)).name for s in valid)}")
    try:
        state = batch(
            [str(s.source) for s in valid],
            [f for f in force or [] if f in stages],
            store,
            dvc,
            return_state=True,
        )
    finally:
        shutdown_pool()
    if state.is_failed() or state.is_crashed():
        problems.append(f"the batch failed: {state.message}")
        summary: dict[str, Any] = {}
    else:
        summary = state.result()
    # 4. report
    for f in summary.get("failed") or []:
        problems.append(f"{Path(f['spec']).name} [{f['output']}]: stage {f['stage']}: {f['error']}")
    if summary:
        _say(
            f"{schedule}: {summary['computed']} computed, {summary['cached']} cached; "
            f"{sum(len(s['outputs']) for s in summary['specs'])} output(s); dvc: {summary['dvc']}"
        )
    if problems:
        for line in problems:
            _say(f"{schedule}: FAILED {line}", warning=True)
        return Failed(message="; ".join(problems), data=summary)
    return summary


# --------------------------------------------------------------------------- deployments


def deployment(sched: Schedules, s: Schedule) -> Any:
    """The Prefect deployment of one schedule (a RunnerDeployment; not registered yet)."""
    from prefect.flows import EntrypointType
    from prefect.schedules import Cron, Interval

    tz = s.timezone or "UTC"
    if s.cron is not None:
        when = Cron(s.cron, timezone=tz)
    else:
        when = Interval(int(s.seconds or 0), anchor_date=ANCHOR.replace(tzinfo=ZoneInfo(tz)), timezone=tz)
    patterns = ", ".join(s.specs)
    return scheduled.to_deployment(
        name=s.name,
        schedule=when,
        paused=s.paused,
        parameters={
            "schedule": s.name,
            "specs": list(s.specs),
            "base_dir": str(sched.base_dir),
            "force": list(s.force),
            "store": sched.store_for(s),
            "dvc": not s.no_dvc,
            "exclude": [str(sched.path)],
        },
        description=s.description or f"recut: {s.when()} over {patterns} (from {sched.shown})",
        tags=[TAG, sched.file_tag],
        entrypoint_type=EntrypointType.MODULE_PATH,  # `flows` is an installed package; no path to a file
    )


def _ours(client: Any, file_tag: str | None) -> list[Any]:
    """The deployments recut registered (of this schedules file, when ``file_tag`` is given)."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags, FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import DeploymentSort

    tags = [TAG, file_tag] if file_tag else [TAG]
    return list(
        client.read_deployments(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME])),
            deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=tags)),
            sort=DeploymentSort.NAME_ASC,
            limit=200,
        )
    )


def remove_stale(sched: Schedules) -> list[str]:
    """Delete the deployments this schedules file registered whose schedule is no longer in it."""
    from prefect import get_client

    keep = {s.name for s in sched.schedules}
    removed = []
    with get_client(sync_client=True) as client:
        for d in _ours(client, sched.file_tag):
            if d.name not in keep:
                client.delete_deployment(d.id)
                removed.append(d.name)
    return removed


def skip_missed(sched: Schedules) -> int:
    """Delete the runs that fell due while nothing served these schedules (no catch-up, as cron): a
    run started by hand from the dashboard is kept. Returns how many were dropped."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterExpectedStartTime,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    dropped = 0
    now = datetime.datetime.now(datetime.UTC)
    with get_client(sync_client=True) as client:
        ids = [d.id for d in _ours(client, sched.file_tag)]
        if not ids:
            return 0
        for _ in range(100):  # pages of 200
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=ids)),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
                    expected_start_time=FlowRunFilterExpectedStartTime(before_=now),
                ),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC,
                limit=200,
            )
            missed = [r for r in runs if r.auto_scheduled]
            for r in missed:
                client.delete_flow_run(r.id)
            dropped += len(missed)
            if len(runs) < 200 or not missed:
                break
    return dropped


def register(sched: Schedules) -> tuple[list[str], list[str]]:
    """Create or update one deployment per schedule, and delete those removed from the file:
    (registered names, removed names)."""
    names = []
    for s in sched.schedules:
        deployment(sched, s).apply()
        names.append(s.name)
    return names, remove_stale(sched)


def registered(file_tag: str | None = None) -> list[dict[str, Any]]:
    """recut's deployments on the server: name, schedule, status, next run, specs, file."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    rows = []
    with get_client(sync_client=True) as client:
        for d in _ours(client, file_tag):
            nxt = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[d.id])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
                ),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC,
                limit=1,
            )
            params = d.parameters or {}
            rows.append(
                {
                    "name": d.name,
                    "schedule": "; ".join(_describe(sch.schedule) for sch in d.schedules) or "none",
                    "status": "paused" if d.paused or not any(sch.active for sch in d.schedules) else "active",
                    "next_run": _next_run(d, nxt),
                    "specs": list(params.get("specs") or []),
                    "force": list(params.get("force") or []),
                    "file": next((t.split(":", 1)[1] for t in d.tags if t.startswith("recut-schedules:")), None),
                    "id": str(d.id),
                }
            )
    return rows


def _next_run(d: Any, scheduled_runs: list[Any]) -> str | None:
    """When the deployment runs next: its first scheduled run, or, before the server's scheduler has
    created runs for a schedule just registered, the schedule's next date (as the scheduler computes it)."""
    if scheduled_runs and scheduled_runs[0].expected_start_time is not None:
        return str(scheduled_runs[0].expected_start_time.isoformat(timespec="seconds"))
    if d.paused:
        return None
    from prefect.server.schemas import schedules as server_schedules

    now = datetime.datetime.now(datetime.UTC)
    dates = []
    for sch in d.schedules:
        if not sch.active:
            continue
        kind = getattr(server_schedules, type(sch.schedule).__name__, None)
        if kind is not None:
            dates += list(kind.model_validate(sch.schedule.model_dump())._get_dates_generator(n=1, start=now))
    return min(dates).isoformat(timespec="seconds") if dates else None


def _describe(schedule: Any) -> str:
    from recut.schedules import format_seconds

    tz = getattr(schedule, "timezone", None)
    suffix = f" ({tz})" if tz and tz != "UTC" else ""
    if getattr(schedule, "cron", None):
        return f"cron {schedule.cron}{suffix}"
    if getattr(schedule, "interval", None) is not None:
        return f"every {format_seconds(int(schedule.interval.total_seconds()))}{suffix}"
    return type(schedule).__name__


def serve(sched: Schedules, limit: int = 1) -> None:
    """Register the schedules and run their flow runs here until Ctrl-C or SIGTERM (Prefect's runner: it
    polls the server for due runs and starts each in a subprocess). On exit the schedules are paused, so
    no run falls due while nothing serves them; the next `recut serve` resumes them. The CLI first calls
    :func:`remove_stale` and :func:`skip_missed`."""
    import warnings

    from prefect import serve as prefect_serve

    # Prefect 3.8.8's SIGTERM handler calls a coroutine without awaiting it; the shutdown still happens
    warnings.filterwarnings("ignore", message="coroutine 'Runner.astop' was never awaited")
    try:
        prefect_serve(
            *[deployment(sched, s) for s in sched.schedules],
            limit=limit,
            pause_on_shutdown=True,
            print_starting_message=False,
        )
    finally:
        # Prefect pauses them on Ctrl-C; on SIGTERM, its handler (3.8.8) exits half-way through
        pause(sched)


def pause(sched: Schedules) -> list[str]:
    """Pause this schedules file's deployments that are not paused yet (their pending runs are deleted)."""
    from prefect import get_client

    paused = []
    with get_client(sync_client=True) as client:
        for d in _ours(client, sched.file_tag):
            if not d.paused:
                client.pause_deployment(d.id)
                paused.append(d.name)
    return paused
