"""`recut zoo`: the toy model zoo (list, train through the Prefect flow, check quality bars).

Heavy libraries (Prefect, through :mod:`flows.train`) and the recipe registry are imported inside
the commands that use them, so that importing this module stays cheap (``import recut.cli`` mounts
it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from recut.cli_guard import guard

zoo_app = typer.Typer(help="The toy model zoo under models/toy (train, check).", no_args_is_help=True)


@zoo_app.command("list")
def list_models() -> None:
    """List the toy models, their folders and dependencies."""
    from toyworld.zoo.recipes import RECIPES

    for name, r in RECIPES.items():
        deps = f" (after {', '.join(r.depends_on)})" if r.depends_on else ""
        typer.echo(f"{name}: {r.description}{deps}\n   {r.folder}")


@zoo_app.command()
@guard(interrupted="interrupted; the committed models are unchanged (a training writes beside them)")
def train(
    names: Annotated[list[str] | None, typer.Argument(help="Models to train (default: all).")] = None,
    quick: Annotated[bool, typer.Option(help="Seconds-long smoke configuration (needs --out).")] = False,
    out: Annotated[Path | None, typer.Option(help="Write folders under this directory instead.")] = None,
    seed: int = 0,
    threads: Annotated[
        int, typer.Option(min=1, help="Torch threads per training (1 suits a shared machine; 2 on an idle 2-core one).")
    ] = 1,
) -> None:
    """Train toy models through the `recut-train` Prefect flow; each is checked against its quality
    bar and replaces its folder only if it meets it (exit 1 if one does not)."""
    if quick and out is None:
        typer.echo("--quick needs --out: quick models must not replace the committed ones", err=True)
        raise typer.Exit(2)
    from flows.train import order

    try:
        order(names)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    from recut import prefect_env

    typer.echo(f"prefect: {prefect_env.configure()}", err=True)
    from flows.train import train_zoo

    res = train_zoo(names, quick, str(out) if out else None, seed, threads)
    typer.echo(json.dumps(res, indent=1, default=str))
    rejected = {name: r for name, r in res.items() if not r["accepted"]}
    for name, r in rejected.items():
        typer.echo(
            f"{name}: below its quality bar; {r['folder']} is unchanged, the new model is in {r['below_bar_folder']}",
            err=True,
        )
    if rejected:
        raise typer.Exit(1)


@zoo_app.command()
def check(
    names: Annotated[list[str] | None, typer.Argument(help="Models to check (default: all).")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder root to check instead of models/toy.")] = None,
) -> None:
    """Measure each model's quality bar against the toy ground truth; exit 1 if one fails."""
    from flows.train import order
    from toyworld.zoo.recipes import RECIPES

    try:
        todo = order(names)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    failed = []
    for name in todo:
        r = RECIPES[name]
        folder = out / name if out else r.folder
        res = r.check(folder) if r.check else {"passed": None}
        typer.echo(json.dumps({"model": name, **res}, default=str))
        if res.get("passed") is False:
            failed.append(name)
    if failed:
        typer.echo(f"below the quality bar: {', '.join(failed)}", err=True)
        raise typer.Exit(1)
