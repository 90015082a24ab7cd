"""`recut schedule` and `recut serve`: the schedules file's batch runs, as Prefect deployments.

`recut schedule` makes the server's deployments match the file (create, update, remove), and
`recut schedule --list` shows them. `recut serve` does the same and then runs them until Ctrl-C, with
Prefect's own runner (`prefect.serve`). Both need a running Prefect server (`recut dashboard`).
Prefect is imported inside the commands, after :func:`recut.schedules.server_api` has set it up.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from recut.cli_guard import Exit, err, guard
from recut.schedules import DEFAULT_FILE, NoServer, Schedules, load_schedules, server_api
from recut.spec import SpecError, find_project_root

out = Console(soft_wrap=True)

FileOpt = Annotated[
    Path | None,
    typer.Option("--file", "-f", help=f"Schedules file (default: <project>/{DEFAULT_FILE.as_posix()})."),
]


def _load(file: Path | None) -> Schedules:
    if file is None:  # shown relative to the working folder when it lies under it
        file = find_project_root(Path.cwd()) / DEFAULT_FILE
        file = Path(os.path.relpath(file)) if file.is_relative_to(Path.cwd().resolve()) else file
    path = file
    try:
        sched = load_schedules(path)
    except SpecError as exc:
        for i in exc.issues:
            err.print(str(i), markup=False, highlight=False)
        n = sum(1 for i in exc.issues if not i.warning)
        err.print(f"{n} problem{'s' if n != 1 else ''} found; nothing was registered.", style="bold red")
        raise Exit(2) from None
    for w in sched.warnings:
        err.print(str(w), markup=False, highlight=False)
    return sched


def _server() -> str:
    try:
        return server_api()
    except NoServer as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise Exit(1) from None


@guard
def schedule(
    file: FileOpt = None,
    list_only: Annotated[
        bool, typer.Option("--list", help="Show the schedules registered on the server; change nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the registered schedules as JSON.")] = False,
) -> None:
    """Register the schedules file's schedules on the Prefect server (one deployment each); `--list` shows them.

    Deployments of schedules no longer in the file are removed. The schedules run while `recut serve` runs.
    """
    if list_only:
        api = _server()
        from flows.scheduled import registered

        _show(registered(), api, as_json)
        return
    sched = _load(file)
    api = _server()
    from flows.scheduled import register, registered

    names, removed = register(sched)
    for name in removed:
        out.print(f"removed {name} (no longer in {sched.shown})", markup=False, highlight=False)
    rows = [r for r in registered(sched.file_tag) if r["name"] in names]
    _show(rows, api, as_json)
    if not as_json:
        out.print(f"{len(names)} schedule(s) registered from {sched.shown}; `recut serve` runs them", markup=False)


def _show(rows: list[dict[str, Any]], api: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"server": api, "schedules": rows}, indent=1))
        return
    if not rows:
        out.print(f"no recut schedules on {api}", markup=False, highlight=False)
        return
    t = Table(title=f"schedules on {api}")
    for c in ("name", "schedule", "status", "next run", "specs"):
        t.add_column(c)
    for r in rows:
        force = f" (force {', '.join(r['force'])})" if r["force"] else ""
        t.add_row(
            escape(r["name"]),
            escape(r["schedule"]),
            r["status"],
            r["next_run"] or "-",
            escape(", ".join(r["specs"]) + force),
        )
    out.print(t)


@guard(interrupted="stopped; the schedules are paused until the next `recut serve`")
def serve(
    file: FileOpt = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Runs at the same time (default 1).")] = 1,
) -> None:
    """Register the schedules and run them (Prefect's runner) until Ctrl-C, which pauses them."""
    sched = _load(file)
    api = _server()
    from flows.scheduled import remove_stale, skip_missed
    from flows.scheduled import serve as serve_schedules

    for name in remove_stale(sched):
        out.print(f"removed {name} (no longer in {sched.shown})", markup=False, highlight=False)
    dropped = skip_missed(sched)
    if dropped:
        out.print(f"skipped {dropped} run(s) that fell due while nothing served them", markup=False)
    for s in sched.schedules:
        state = "paused" if s.paused else s.when()
        out.print(f"serving {s.name}: {state} over {', '.join(s.specs)}", markup=False, highlight=False)
    out.print(f"server {api}; Ctrl-C stops (and pauses the schedules)", markup=False, highlight=False)
    try:
        serve_schedules(sched, limit=limit)
    except SystemExit as exc:  # Prefect's runner exits this way on SIGTERM, once it has stopped
        if exc.code not in (0, None):
            raise
    out.print("stopped; the schedules are paused until the next `recut serve`", markup=False, highlight=False)
