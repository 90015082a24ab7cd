"""The `train` flow: rebuild the toy model zoo (models/toy/*), one task per recipe.

Recipes run one after another in dependency order, each on ``threads`` torch threads (default 1,
robust on a shared machine; 2 on an idle 2-core one).  Each recipe trains into a staging folder
beside its own (``<folder>.training``), then the recipe's check measures its quality bar:

* passed (or no bar): the new folder replaces the old one;
* below the bar: the old folder stays as it was and the new model is kept at
  ``<folder>.below-bar`` for inspection; the run reports it (``recut zoo train`` exits 1, so a
  ``dvc repro`` stage fails instead of recording a model that misses its bar).

Quick (smoke) trainings skip the check.  The figures land on the dashboard as a table artifact.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NONE

from recut.store import recover_folder, swap_in_folder
from toyworld.zoo.recipes import RECIPES


def order(names: list[str] | None) -> list[str]:
    """The recipes to run (default: all), dependencies first."""
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
    return RECIPES[name].train(out, quick=quick, seed=seed, threads=threads)


@task(name="check-model", cache_policy=NONE, persist_result=False)
def check_model(name: str, out: str) -> dict[str, Any]:
    r = RECIPES[name]
    return r.check(out) if r.check else {"passed": None}


@flow(name="recut-train", persist_result=False, log_prints=False)
def train_zoo(
    names: list[str] | None = None, quick: bool = False, out_root: str | None = None, seed: int = 0, threads: int = 1
) -> dict[str, Any]:
    """Train the named toy models (default: all) into models/toy (or out_root); a model below its
    quality bar does not replace the folder (``accepted`` false, see the module docstring)."""
    results: dict[str, Any] = {}
    for name in order(names):
        out = Path(out_root) / name if out_root else RECIPES[name].folder
        staging = _fresh_staging(out)
        info = train_model.with_options(task_run_name=f"train[{name}]")(name, str(staging), quick, seed, threads)
        verdict = None if quick else check_model.with_options(task_run_name=f"check[{name}]")(name, str(staging))
        res: dict[str, Any] = {"folder": str(out), "train": info, "check": verdict}
        if verdict is not None and verdict.get("passed") is False:
            res["accepted"], res["below_bar_folder"] = False, str(_set_aside(staging, out))
        else:
            res["accepted"] = True
            swap_in_folder(staging, out)
            shutil.rmtree(_sibling(out, BELOW_BAR), ignore_errors=True)  # an earlier rejected model
        results[name] = res
    _publish(results)
    return results


STAGING, BELOW_BAR = ".training", ".below-bar"


def _sibling(out: Path, suffix: str) -> Path:
    return out.with_name(out.name + suffix)


def _fresh_staging(out: Path) -> Path:
    """An empty staging folder beside ``out`` (same parent, so the T2I's relative component links
    stay valid once it is renamed); first repairs a swap that a killed run left half done."""
    recover_folder(out)
    staging = _sibling(out, STAGING)
    if staging.exists():
        shutil.rmtree(staging)
    return staging


def _set_aside(staging: Path, out: Path) -> Path:
    """Keep a model that missed its bar at ``<out>.below-bar`` (replacing an older one)."""
    rejected = _sibling(out, BELOW_BAR)
    if rejected.exists():
        shutil.rmtree(rejected)
    staging.rename(rejected)
    return rejected


def _publish(results: dict[str, Any]) -> None:
    rows = []
    for name, r in results.items():
        info = r["train"] or {}
        row: dict[str, Any] = {"model": name, "folder": r["folder"], "accepted": r["accepted"]}
        if r["check"] is not None:
            row["passed"] = r["check"].get("passed")
        row.update({k: v for k, v in info.items() if isinstance(v, (int, float, str, bool))})
        rows.append(row)
    try:
        create_table_artifact(table=rows, key="recut-zoo", description="Toy model zoo: training figures")
    except Exception:  # noqa: BLE001 - the dashboard is optional
        pass
