"""The `batch` flow: many specs at once, sharing stages across specs, run concurrently on the worker pool."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows._graph import run_specs


@flow(name="recut-batch", persist_result=False, log_prints=False)
def batch(
    specs: list[str], force: list[str] | None = None, store: str | None = None, dvc: bool = True
) -> dict[str, Any]:
    """Run several specs as one graph; identical stages (same key) run once."""
    return run_specs(list(specs), force, store, dvc)
