"""Shared fixtures: a throwaway project folder with a clip and a spec writer."""

from __future__ import annotations

import os
import socket
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

REPO = Path(__file__).resolve().parent.parent

BASE_SPEC = """\
method: sdedit
input:
  video: media/clip.mp4
  frames: {start: 0, count: 4}
model: {profile: tiny-random}
seed: 0
params: {strength: 0.5, steps: 4, guidance_scale: 3.0}
edits:
  - {name: a, prompt: a red square}
  - {name: b, prompt: a blue square}
"""


class Project:
    """A folder that looks like a user's recut project."""

    def __init__(self, root: Path):
        self.root = root
        (root / ".git").mkdir(parents=True, exist_ok=True)
        (root / "media").mkdir(exist_ok=True)
        (root / "specs").mkdir(exist_ok=True)
        from recut.video import make_test_video

        make_test_video(root / "media" / "clip.mp4", frames=8, width=32, height=32, fps=8)

    @property
    def store(self) -> Path:
        return self.root / ".recut" / "store"

    def spec(self, text: str = BASE_SPEC, name: str = "edit.yaml") -> Path:
        p = self.root / "specs" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        text = textwrap.dedent(text).replace("media/clip.mp4", str(self.root / "media" / "clip.mp4"))
        p.write_text(text)
        return p


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path / "proj")


@pytest.fixture(scope="session")
def prefect_api():
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        url = PREFECT_API_URL.value()
        # In the environment too, as a user's server would be: `recut run` then sees a server (and takes
        # the flows) instead of choosing the in-process path it takes in ephemeral mode.
        before = os.environ.get("PREFECT_API_URL")
        os.environ["PREFECT_API_URL"] = url
        try:
            yield url
        finally:
            if before is None:
                os.environ.pop("PREFECT_API_URL", None)
            else:
                os.environ["PREFECT_API_URL"] = before


@pytest.fixture(scope="session", autouse=True)
def _ray_shutdown():
    yield
    from recut.workers import shutdown_pool

    shutdown_pool()
    import ray

    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch intra-op thread for a module (the zoo trainers' setting; see
    toyworld.zoo._util.set_threads), restored afterwards."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def keep_torch_threads():
    """Restores torch's intra-op thread count after a test that trains with ``threads=N``."""
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture
def ephemeral(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Ephemeral mode (no server anywhere), with Prefect's boot and the worker pool recording any use
    (``"prefect"``, ``"ray"``): the paths that must start neither can assert an empty list."""
    used: list[str] = []
    from recut import prefect_env, workers

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("RECUT_DASHBOARD", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setattr(prefect_env, "_profile_api_url", lambda: None)
    monkeypatch.setattr(prefect_env, "boot_ephemeral", lambda: used.append("prefect"))

    def pool() -> None:
        used.append("ray")
        raise RuntimeError("this run must not start workers")

    monkeypatch.setattr(workers, "get_pool", pool)
    return used


@pytest.fixture
def no_network(monkeypatch):
    """Record (and refuse) every attempt to open a connection."""
    attempts: list[object] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network is off in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts
