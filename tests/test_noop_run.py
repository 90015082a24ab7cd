"""A run with nothing to compute costs what planning costs (issue 29, goal 1): in ephemeral mode it
starts neither Prefect's server nor Ray, puts the outputs in place from the store and prints no
traceback; a run with work to do takes the full path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recut import prefect_env
from recut.cli import app
from recut.plan import build_plan
from recut.runner import run_plan
from recut.spec import load_spec
from recut.store import Store
from tests.conftest import BASE_SPEC, Project


def _compute_all(spec: Path, store: Path) -> None:
    """Fill the store in-process (no Prefect, no Ray)."""
    run_plan(build_plan([load_spec(spec)], Store(store)), store)


def test_an_all_cached_run_starts_nothing_and_restores_the_outputs(
    project: Project, ephemeral: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECUT_STORE", str(project.store))
    spec = project.spec(BASE_SPEC, "edit.yaml")
    _compute_all(spec, project.store)
    out = project.root / "outputs" / "edit"
    shutil.rmtree(out, ignore_errors=True)
    res = CliRunner().invoke(app, ["run", str(spec), "--json", "--no-dvc"])
    assert res.exit_code == 0, res.output
    assert ephemeral == []  # neither Prefect nor Ray
    summary = json.loads(res.stdout)
    assert summary["computed"] == 0 and summary["cached"] == 5
    assert summary["prefect"].startswith("not started")
    assert "Traceback" not in res.stderr
    for name in ("a", "b"):
        assert (out / f"{name}.mp4").exists()
    assert set(json.loads((out / "metrics.json").read_text())) == {"a", "b"}


def test_a_run_with_work_takes_the_full_path(project: Project, ephemeral: list[str], monkeypatch) -> None:
    monkeypatch.setenv("RECUT_STORE", str(project.store))
    spec = project.spec(BASE_SPEC, "edit.yaml")
    res = CliRunner().invoke(app, ["run", str(spec), "--json", "--no-dvc", "--executor", "ray"])
    assert "prefect" in ephemeral and "ray" in ephemeral  # it went for the server and the workers
    assert res.exit_code != 0


def test_the_profile_api_url_is_read_without_importing_prefect(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "profiles.toml").write_text(
        'active = "team"\n[profiles.team]\nPREFECT_API_URL = "http://10.0.0.9:4200/api"\n[profiles.local]\n'
    )
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.delenv("PREFECT_PROFILE", raising=False)
    monkeypatch.delenv("PREFECT_PROFILES_PATH", raising=False)
    assert prefect_env._profile_api_url() == "http://10.0.0.9:4200/api"
    monkeypatch.setenv("PREFECT_PROFILE", "local")
    assert prefect_env._profile_api_url() is None
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "none"))
    assert prefect_env._profile_api_url() is None
