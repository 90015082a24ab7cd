"""The `recut` command line.

Validation happens once, at the edge: every spec problem prints as
``file:line: field.path: message`` and the command exits 2.  Runtime problems
(unreadable media, missing weights) print one clear line and exit 1.  No
command prints a traceback unless RECUT_DEBUG=1.

Heavy libraries (Prefect, Ray, DVC) and the modules that only one command needs (the planner,
the store, the Prefect set-up, rich.progress) are imported inside the commands that use them, so
that importing this module stays cheap and `recut validate` starts fast.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from recut import cli_schedule, progress, stop
from recut.cli_guard import Exit as _Exit
from recut.cli_guard import err
from recut.cli_guard import guard as _guard
from recut.importers import import_app
from recut.models import PROFILES, availability
from recut.registry import cli_apps
from recut.registry import methods as registered_methods
from recut.registry import metrics as registered_metrics
from recut.spec import SpecError, find_project_root, json_schema, load_spec
from recut.sweep import sweep_points

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="recut: declarative video editing with diffusion models.",
    pretty_exceptions_enable=False,
)
for _name, _sub in cli_apps().items():
    app.add_typer(_sub, name=_name)
app.add_typer(import_app, name="import")
app.command(name="schedule")(cli_schedule.schedule)
app.command(name="serve")(cli_schedule.serve)
out = Console(soft_wrap=True)

SpecArgs = Annotated[list[Path], typer.Argument(help="Spec files (YAML).", show_default=False)]
ForceOpt = Annotated[
    list[str] | None,
    typer.Option("--force", help="Recompute this stage and everything downstream (repeatable; 'all')."),
]
StoreOpt = Annotated[
    Path | None,
    typer.Option("--store", help="Artifact store (default: <project>/.recut/store or $RECUT_STORE)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable summary.")]


def _load_all(paths: list[Path]) -> list[Any]:
    specs, issues = [], []
    for p in paths:
        try:
            specs.append(load_spec(p))
        except SpecError as exc:
            issues.extend(exc.issues)
    if issues:
        for i in issues:
            err.print(str(i), markup=False, highlight=False)
        n = len(issues)
        err.print(f"{n} problem{'s' if n != 1 else ''} found; nothing was run.", style="bold red")
        raise _Exit(2)
    return specs


def _store_root(paths: list[Path], store: Path | None) -> str:
    from recut.plan import default_store_root

    return str(store.resolve()) if store else default_store_root(str(paths[0]))


def main() -> None:
    try:
        app()
    except _Exit as e:
        sys.exit(e.code)


def _stop_on_signals() -> None:
    """SIGTERM (a scheduler's stop, `kill`) exits through Python's shutdown like Ctrl-C does, so the
    atexit hooks stop what this process started (Prefect's ephemeral server, the local Ray): with the
    default handler the process vanishes and the ephemeral server is left running. Both first stop the
    run's stages (:mod:`recut.stop`): Python's shutdown waits for the threads they run on. For `recut run`
    only: the commands that own long-lived servers (dashboard, serve) handle their signals themselves.
    (Inside a flow run Prefect puts its own SIGTERM handler in place; the flow asks for the stop then.)"""

    def terminated(signum: int, _frame: Any) -> None:
        stop.request()
        raise SystemExit(128 + signum)

    def interrupted(_signum: int, _frame: Any) -> None:
        stop.request()
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, terminated)
        signal.signal(signal.SIGINT, interrupted)


# --------------------------------------------------------------------------- validate


@app.command()
@_guard
def validate(specs: SpecArgs) -> None:
    """Check spec files; print `file:line: field.path: message` for each problem."""
    loaded = _load_all(specs)
    for p, s in zip(specs, loaded, strict=True):
        n_out = len(s.edits) * max(1, _n_points(s))
        out.print(f"ok  {p}  ({s.method}, {len(s.edits)} edit(s), {n_out} output(s))", markup=False)


def _n_points(spec: Any) -> int:
    return len(sweep_points(spec))


# --------------------------------------------------------------------------- plan


@app.command()
@_guard
def plan(specs: SpecArgs, force: ForceOpt = None, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Show the stage graph with cache keys and status. Computes nothing."""
    from recut.plan import build_plan
    from recut.store import Store

    loaded = _load_all(specs)
    root = _store_root(specs, store)
    try:
        p = build_plan(loaded, Store(root), set(force or ()))
    except ValueError as exc:
        err.print(f"error: {exc}", markup=False)
        raise _Exit(2) from None
    rows = [
        {
            "stage": n.stage.name,
            "kind": n.kind,
            "label": n.label,
            "key": n.key,
            "status": "forced" if n.forced else "cached" if n.cached else "to compute",
            "after": [k for k in n.upstream.values()],
            "outputs": [i.label for i in n.instances],
        }
        for n in p.ordered()
    ]
    if as_json:
        print(json.dumps({"store": root, "stages": rows}, indent=1))
        return
    t = Table(title=f"stage graph ({len(rows)} stages, store {root})")
    for c in ("stage", "key", "status", "after", "used by"):
        t.add_column(c)
    for r in rows:
        style = {"cached": "green", "to compute": "yellow", "forced": "magenta"}[r["status"]]
        t.add_row(
            escape(r["label"]),
            r["key"][:12],
            f"[{style}]{r['status']}[/{style}]",
            ", ".join(k[:8] for k in r["after"]),
            ", ".join(r["outputs"]),
        )
    out.print(t)
    todo = sum(1 for r in rows if r["status"] != "cached")
    out.print(f"{len(rows) - todo} cached, {todo} to compute")


# --------------------------------------------------------------------------- run


class _RichSink:
    """Progress for long stages: one bar per running stage, steps when known."""

    def __init__(self, console: Console):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.tasks: dict[str, Any] = {}
        self.labels: dict[str, str] = {}

    def start(self, key: str, label: str, kind: str) -> None:
        self.labels[key] = label
        self.tasks[key] = self.progress.add_task(escape(f"{label} [{key[:8]}]"), total=None)

    def step(self, key: str, step: int, total: int) -> None:
        if key in self.tasks:
            self.progress.update(self.tasks[key], completed=step, total=total)

    def done(self, key: str, status: str, seconds: float) -> None:
        if key in self.tasks:
            tid = self.tasks[key]
            self.progress.update(
                tid,
                description=escape(f"{self.labels[key]} [{key[:8]}] {status} {seconds:.1f}s"),
                total=1,
                completed=1,
            )


@app.command()
@_guard
def run(
    specs: SpecArgs,
    force: ForceOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    no_dvc: Annotated[bool, typer.Option("--no-dvc", help="Do not record artifacts in DVC.")] = False,
    executor: Annotated[
        str,
        typer.Option(
            "--executor",
            help="auto (default): in this process for a small run with no Prefect server, else Ray; "
            "ray: Prefect flows on Ray workers; local: in this process, no Prefect, no Ray.",
        ),
    ] = "auto",
) -> None:
    """Run specs as a Prefect flow on Ray workers; outputs land in each spec's output dir."""
    t_start = time.perf_counter()
    _stop_on_signals()
    loaded = _load_all(specs)  # validate at the edge, before anything starts
    from recut import launch, prefect_env, service

    if executor not in launch.EXECUTORS:
        err.print(f"error: --executor {executor!r}: expected one of {', '.join(launch.EXECUTORS)}", markup=False)
        raise _Exit(2)
    mode = prefect_env.configure()
    recorded = prefect_env.records(mode)
    from recut.plan import build_plan
    from recut.store import Store

    root = _store_root(specs, store)
    try:
        planned = build_plan(loaded, Store(root), set(force or ()))
    except ValueError as exc:
        err.print(f"error: {exc}", markup=False)
        raise _Exit(2) from None
    todo = [n for n in planned.ordered() if not n.cached]
    paths = [str(p.resolve()) for p in specs]
    warm = service.attach(Path(paths[0]).parent, notice=lambda line: err.print(line, markup=False))
    if warm is not None and not warm.records and recorded:
        # The service started before this Prefect server: it would not record the run there.
        err.print(
            f"recut service (pid {warm.state.get('pid')}) started without a Prefect server, so it would not "
            "record this run; running cold (`recut down` then `recut up` makes it record)",
            markup=False,
        )
        warm = None
    if not todo and not recorded and (warm is None or not warm.records):
        # Nothing to compute and no dashboard to record on: no Prefect server, no Ray (a no-op run
        # costs what planning costs). With a server running, the flow runs and records the run.
        from recut.outputs import finish_cached

        try:
            summary = finish_cached(planned, Store(root))
        except LookupError:  # gone since planning: take the full path
            summary = None
        if summary is not None:
            summary["prefect"] = "not started (every stage cached; ephemeral mode records no run)"
            summary["wall_seconds"] = round(time.perf_counter() - t_start, 3)
            _report(summary, as_json)
            return
    sink = _RichSink(err) if not as_json else None
    progress.set_sink(sink)
    try:
        if sink is not None:
            sink.progress.start()
        if warm is not None and executor != "local":
            summary = warm.run(paths, list(force or []), root, not no_dvc)
            mode = summary.get("prefect", mode)
        elif launch.choose(executor, mode, todo) == "local":
            summary = launch.run_in_process(planned, Store(root), not no_dvc)
            mode = summary["prefect"]
        else:
            if not as_json:
                err.print(f"prefect: {mode}", markup=False, highlight=False)
            summary = launch.run_flows(paths, list(force or []), root, not no_dvc, sorted({n.method for n in todo}))
    finally:
        if sink is not None:
            sink.progress.stop()
        progress.set_sink(None)
    summary["prefect"] = mode
    summary["wall_seconds"] = round(time.perf_counter() - t_start, 3)
    _report(summary, as_json)


# --------------------------------------------------------------------------- the warm service

ProjectOpt = Annotated[Path, typer.Option("--project", help="Project folder (default: the one holding the cwd).")]


@app.command()
@_guard
def up(project: ProjectOpt = Path(".")) -> None:
    """Start the warm service: Prefect, Ray and the workers stay up, and models stay loaded between runs."""
    from recut import service

    root = find_project_root(project.resolve())
    t0 = time.perf_counter()
    already = service.attach(root)
    try:
        warm = already or service.up(root)
    except (RuntimeError, TimeoutError) as exc:
        err.print(f"error: {exc}", markup=False)
        raise _Exit(1) from None
    st = warm.status()
    verb = "already running" if already else f"started in {time.perf_counter() - t0:.1f}s"
    n = len(st["workers"])
    out.print(f"recut service {verb}: pid {st['pid']}, {n} worker(s), prefect: {st['prefect']}", markup=False)
    out.print("`recut run` uses it from now on; `recut status` shows it, `recut down` stops it.", markup=False)


@app.command()
@_guard
def down(project: ProjectOpt = Path(".")) -> None:
    """Stop the warm service (its workers, Ray, and the Prefect server it started)."""
    from recut import service

    pid = service.down(find_project_root(project.resolve()))
    out.print("no recut service was running" if pid is None else f"stopped the recut service (pid {pid})", markup=False)


@app.command()
@_guard
def status(project: ProjectOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Show the warm service: its Prefect, its workers, the models each holds, and their memory."""
    from recut import service

    warm = service.attach(find_project_root(project.resolve()), notice=lambda line: err.print(line, markup=False))
    if warm is None:
        if as_json:
            print(json.dumps({"running": False}))
        else:
            out.print("no recut service is running (`recut up` starts one); runs start their own workers", markup=False)
        return
    st = warm.status()
    if as_json:
        print(json.dumps({"running": True, **st}, indent=1))
        return
    out.print(
        f"recut service pid {st['pid']} for {st['project']}: up {st['uptime_s']:.0f}s, {st['runs']} run(s), "
        f"{st['rss_mib']} MiB; prefect: {st['prefect']}",
        markup=False,
    )
    t = Table(title="workers")
    for c in ("pid", "memory (MiB)", "calls", "models held (loads)"):
        t.add_column(c)
    for w in st["workers"]:
        held = ", ".join(f"{m} ({n})" for m, n in sorted(w["loads"].items())) or "-"
        t.add_row(str(w["pid"]), str(w.get("rss_mib")), str(w["calls"]), held)
    out.print(t)


def _report(summary: dict[str, Any], as_json: bool) -> None:
    """Print a run's summary (JSON, or the outputs and their metrics); exit 1 on a failed output or DVC."""
    if as_json:
        print(json.dumps(summary, indent=1, default=str))
        _fail_on_failures(summary)
        _fail_on_dvc(summary)
        return
    for s in summary["specs"]:
        out.print(f"[bold]{s['spec']}[/bold] -> {s['output_dir']}")
        for slug, o in s["outputs"].items():
            out.print(f"  {slug}: {', '.join(Path(f).name for f in o['files'].values())}", markup=False)
            for line in metric_lines(o["metrics"]):
                out.print(f"    {line}", markup=False)
    out.print(
        f"{summary['computed']} computed, {summary['cached']} cached, "
        f"{summary['wall_seconds']:.1f}s; dvc: {summary['dvc']}",
        markup=False,
    )
    _fail_on_failures(summary)
    _fail_on_dvc(summary)


def _fail_on_failures(summary: dict[str, Any]) -> None:
    """Exit 1 with one line per output that failed (the others were written)."""
    failed = summary.get("failed") or []
    if not failed:
        return
    for f in failed:
        err.print(f"FAILED {Path(f['spec']).name} [{f['output']}]: stage {f['stage']}: {f['error']}", markup=False)
    n = sum(len(s["outputs"]) for s in summary["specs"])
    err.print(f"{len(failed)} output(s) failed; the other {n} were written", markup=False)
    raise _Exit(1)


def metric_lines(metrics: dict[str, Any], width: int = 100) -> list[str]:
    """Metrics as ``name=value`` lines (numbers to 4 significant digits); a skipped metric gets
    its own line with the reason (``lpips: skipped: no LPIPS weights ...``)."""
    lines: list[str] = []
    cur = ""
    for k, v in metrics.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            item = f"{k}={v:.4g}"
            if cur and len(cur) + 2 + len(item) > width:
                lines.append(cur)
                cur = ""
            cur = f"{cur}  {item}" if cur else item
    if cur:
        lines.append(cur)
    lines += [f"{k}: {v}" for k, v in metrics.items() if not isinstance(v, (int, float))]
    return lines


def _fail_on_dvc(summary: dict[str, Any]) -> None:
    if str(summary.get("dvc", "")).startswith("FAILED"):
        err.print(
            f"the outputs are complete, but recording them in DVC failed: {summary['dvc']}",
            markup=False,
            highlight=False,
        )
        raise _Exit(1)


# --------------------------------------------------------------------------- verify


@app.command()
@_guard
def verify(
    store: StoreOpt = None,
    quarantine: Annotated[
        bool,
        typer.Option("--quarantine/--report-only", help="Move bad artifacts to <store>/quarantine (default)."),
    ] = True,
    prune_quarantine: Annotated[
        float | None,
        typer.Option(
            "--prune-quarantine",
            metavar="DAYS",
            min=0,
            help="Also delete what was moved to <store>/quarantine at least DAYS ago (0: all of it).",
        ),
    ] = None,
) -> None:
    """Hash every artifact in the store; report (and move aside) corrupt ones. Exit 1 if any."""
    from recut.store import Store  # light: stdlib only

    if store is not None:
        root = store.resolve()
    elif os.environ.get("RECUT_STORE"):  # as flows._graph.default_store_root, without importing Prefect
        root = Path(os.environ["RECUT_STORE"]).resolve()
    else:
        root = find_project_root(Path.cwd()) / ".recut" / "store"
    if not root.is_dir():
        if store is not None:  # a path given by hand that holds nothing is a mistake, not a clean store
            err.print(f"error: no store at {root}", markup=False, highlight=False)
            raise _Exit(1)
        out.print(f"no store at {root} yet; nothing to check", markup=False, highlight=False)
        return
    st = Store(root)
    if prune_quarantine is not None:
        removed, freed = st.prune_quarantine(prune_quarantine * 86400.0)
        out.print(
            f"quarantine: {removed} folder(s) older than {prune_quarantine:g} day(s) deleted ({freed / 2**20:.1f} MiB)",
            markup=False,
            highlight=False,
        )
    checked, bad = st.verify_all(quarantine=quarantine)
    for rec in bad:
        out.print(f"bad  {rec.line()}", markup=False, highlight=False)
    verb = "moved to quarantine" if quarantine else "reported only"
    summary = f"{checked} artifact(s) checked in {root}: {len(bad)} bad"
    out.print(summary + (f" ({verb})" if bad else ""), markup=False, highlight=False)
    if bad:
        raise _Exit(1)


# --------------------------------------------------------------------------- gallery


@app.command()
@_guard
def gallery(
    specs: Annotated[
        list[Path] | None, typer.Argument(help="Show only these specs' outputs.", show_default=False)
    ] = None,
    all_outputs: Annotated[
        bool, typer.Option("--all", help="Show every output under the outputs root (each summary.json).")
    ] = False,
    store: StoreOpt = None,
) -> None:
    """Write <project>/outputs/index.html: every output beside its input, with its prompt, parameters
    and metrics; sortable and filterable, opens from disk. Every `recut run` rewrites it."""
    from recut import gallery as gal  # light: stdlib and YAML; previews import numpy/PyAV when needed
    from recut.plan import default_output_dir

    if bool(specs) == all_outputs:
        err.print("error: give spec files, or --all for every output (not both)", markup=False)
        raise _Exit(2)
    start = Path.cwd()
    roots: dict[Path, list[Path] | None] = {}
    if all_outputs:
        root = gal.outputs_root(find_project_root(start))
        if not gal.find_summaries(root):
            err.print(
                f"error: no outputs under {root} yet (no summary.json); `recut run SPEC` writes them",
                markup=False,
                highlight=False,
            )
            raise _Exit(1)
        roots[root] = None
    else:
        issues, missing = [], []
        for p in specs or []:
            try:
                spec = load_spec(p, check_files=False, emit_warnings=False)
            except SpecError as exc:
                issues.extend(exc.issues)
                continue
            summary = default_output_dir(spec) / "summary.json"
            if not summary.is_file():
                missing.append(f"error: {p}: no outputs yet (no {summary}); run `recut run {p}` first")
                continue
            start = Path(p).resolve().parent
            paths = roots.setdefault(gal.outputs_root(spec.root or find_project_root(start)), [])
            paths.append(summary)  # type: ignore[union-attr]
        for line in [str(i) for i in issues] + missing:
            err.print(line, markup=False, highlight=False)
        if issues or missing:
            raise _Exit(2 if issues else 1)
    if store is not None:
        store_root = store.resolve()
    elif os.environ.get("RECUT_STORE"):
        store_root = Path(os.environ["RECUT_STORE"]).resolve()
    else:
        store_root = find_project_root(start) / ".recut" / "store"
    lookup = gal.store_lookup(store_root)
    for root, paths in roots.items():
        w = gal.write_gallery(root, paths, lookup)
        for line in w.warnings:
            err.print(f"warning: {line}", markup=False, highlight=False)
        out.print(f"wrote {w.path} ({w.outputs} output(s) of {w.specs} spec(s)); open {w.path.as_uri()}", markup=False)


# --------------------------------------------------------------------------- misc


@app.command()
@_guard
def schema(
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the JSON Schema.")] = Path(
        "specs/schema.json"
    ),
) -> None:
    """Write the JSON Schema of specs (for editor autocompletion and checks)."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(json_schema(), indent=2, sort_keys=False) + "\n")
    out.print(f"wrote {out_path}", markup=False)


@app.command()
@_guard
def methods() -> None:
    """List the editing methods and their stages."""
    for name, e in registered_methods().items():
        out.print(f"[bold]{name}[/bold]: {e.description}")
        out.print("   stages: " + " -> ".join(s.name for s in e.engine.stages), markup=False)


@app.command()
@_guard
def profiles() -> None:
    """List model profiles."""
    for p in PROFILES.values():
        where = "in repo" if p.local else "hub id, local cache only"
        comps = ", ".join(f"{r}={loc}" for r, loc in p.components.items())
        out.print(f"[bold]{p.name}[/bold] ({where}): {p.description}\n   {comps}; {availability(p.name)}")


@app.command()
@_guard
def metrics() -> None:
    """List the metrics a spec's `evaluate` can name."""
    for m in registered_metrics().values():
        out.print(f"[bold]{m.name}[/bold]: {m.description}")
        if m.outputs:
            out.print(f"   also reports {', '.join(m.outputs)}", markup=False)


@app.command()
@_guard
def dashboard(
    port: Annotated[int, typer.Option(help="Port of the Prefect UI and API on 127.0.0.1.")] = 4200,
    files_port: Annotated[
        int | None,
        typer.Option(help="Port of the read-only outputs file server (default: --port + 1; 0: any free port)."),
    ] = None,
    outputs: Annotated[
        Path | None, typer.Option(help="The folder to serve (default: <project>/outputs).", show_default=False)
    ] = None,
) -> None:
    """Start the Prefect server (the orchestration dashboard) and a read-only file server for the
    outputs, both on 127.0.0.1; `recut run` in this project records its runs there. Ctrl-C stops both."""
    from recut import dashboard as dash  # stdlib only

    def say(line: str) -> None:
        out.print(line, markup=False, highlight=False)

    raise _Exit(dash.run(find_project_root(Path.cwd()), port, files_port, outputs, say))


if __name__ == "__main__":
    main()
