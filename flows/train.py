"""The `train` flow: rebuild the toy model zoo (models/toy/*), one task per recipe.

Recipes run one after another in dependency order, each on ``threads`` torch threads (default 1,
robust on a shared machine; 2 on an idle 2-core one);
each task writes a from_pretrained folder and returns its quality figures,
which land on the dashboard as a table artifact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NONE


def order(names: list[str] | None) -> list[str]:
    """The recipes to run (default: all), dependencies first."""
    from engines.common.zoo.recipes import RECIPES

    wanted = list(RECIPES) if not names else list(names)
    for n in wanted:
        if n not in RECIPES:
            raise ValueError(f"unknown toy model {n!r}; known: {', '.join(RECIPES)}")
    done: list[str] = []

    def visit(n: str) -> None:
        if n in done:
            return
        for d in RECIPES[n].depends_on:
            if d in wanted:
                visit(d)
        done.append(n)

    for n in wanted:
        visit(n)
    return done


@task(name="train-model", cache_policy=NONE, persist_result=False)
def train_model(name: str, out: str, quick: bool, seed: int, threads: int = 1) -> dict[str, Any]:
    from engines.common.zoo.recipes import RECIPES

    return RECIPES[name].train(out, quick=quick, seed=seed, threads=threads)


@task(name="check-model", cache_policy=NONE, persist_result=False)
def check_model(name: str, out: str) -> dict[str, Any]:
    from engines.common.zoo.recipes import RECIPES

    r = RECIPES[name]
    return r.check(out) if r.check else {"passed": None}


@flow(name="recut-train", persist_result=False, log_prints=False)
def train_zoo(
    names: list[str] | None = None, quick: bool = False, out_root: str | None = None, seed: int = 0, threads: int = 1
) -> dict[str, Any]:
    """Train the named toy models (default: all) into models/toy (or out_root)."""
    from engines.common.zoo.recipes import RECIPES

    results: dict[str, Any] = {}
    for name in order(names):
        out = str(Path(out_root) / name) if out_root else str(RECIPES[name].folder)
        info = train_model.with_options(task_run_name=f"train[{name}]")(name, out, quick, seed, threads)
        results[name] = {"folder": out, "train": info}
    _publish(results)
    return results


def _publish(results: dict[str, Any]) -> None:
    from prefect.artifacts import create_table_artifact

    rows = []
    for name, r in results.items():
        info = r["train"] or {}
        row: dict[str, Any] = {"model": name, "folder": r["folder"]}
        row.update({k: v for k, v in info.items() if isinstance(v, (int, float, str, bool))})
        rows.append(row)
    try:
        create_table_artifact(table=rows, key="recut-zoo", description="Toy model zoo: training figures")
    except Exception:  # noqa: BLE001 - the dashboard is optional
        pass
