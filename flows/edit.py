"""The `edit` flow: one spec, its stage graph as cached tasks."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows._graph import run_specs


@flow(name="recut-edit", persist_result=False, log_prints=False)
def edit(spec: str, force: list[str] | None = None, store: str | None = None, dvc: bool = True) -> dict[str, Any]:
    """Run one edit spec; stages already in the store are reused."""
    return run_specs([spec], force, store, dvc)
