"""Choose how flows talk to Prefect: a running server, or an ephemeral one.

Call :func:`configure` before importing prefect.  Order of preference:
1. ``PREFECT_API_URL`` set (environment or active Prefect profile): use it.
2. A server answering on ``RECUT_DASHBOARD`` (default http://127.0.0.1:4200):
   use it, so runs appear in the dashboard (about 1.5 s of overhead a run).
3. Otherwise Prefect's ephemeral mode: a temporary local server per process
   (works everywhere, but costs seconds at start-up and shows no dashboard).

Prefect is imported inside the functions that use it, so that importing this module stays cheap
(Prefect takes about a second to import, and must be imported after :func:`configure`).
"""

from __future__ import annotations

import os
import threading
import urllib.request

DEFAULT_DASHBOARD = "http://127.0.0.1:4200"


def _healthy(api_url: str, timeout: float = 0.5) -> bool:
    try:
        with urllib.request.urlopen(api_url.rstrip("/") + "/health", timeout=timeout) as r:
            return bool(r.status == 200)
    except Exception:  # noqa: BLE001
        return False


def _profile_api_url() -> str | None:
    """``PREFECT_API_URL`` of the active Prefect profile (what `prefect config set` writes), read from
    the profiles file without importing Prefect (that import costs ~1.5 s, most of a no-op run)."""
    import tomllib
    from pathlib import Path

    home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
    path = Path(os.environ.get("PREFECT_PROFILES_PATH", home / "profiles.toml")).expanduser()
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, ValueError):  # no profiles file, or an unreadable one, means "none"
        return None
    name = os.environ.get("PREFECT_PROFILE") or data.get("active") or "ephemeral"
    url = (data.get("profiles") or {}).get(name, {}).get("PREFECT_API_URL")
    return str(url) if url else None


def configure() -> str:
    """Set Prefect's environment; returns a one-line description of the mode."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Task failures reach the user as one line from the CLI; Prefect's own
    # ERROR records carry full tracebacks (RECUT_DEBUG=1 shows them).
    quiet = "WARNING" if os.environ.get("RECUT_DEBUG") == "1" else "CRITICAL"
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", quiet)
    # Prefect's logging config sends every other library's records to its console handler too; when
    # the ephemeral server stops at exit, SQLAlchemy's pool logs a cancelled connection reset there
    # with a full traceback (seen once under load, after a run had finished and succeeded).
    os.environ.setdefault("PREFECT_LOGGING_ROOT_LEVEL", quiet)
    os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
    # Faster ephemeral start-up: no background services we do not use.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "60")
    api = os.environ.get("PREFECT_API_URL")
    if api:
        return f"server {api}"
    profile_api = _profile_api_url()
    if profile_api:
        return f"server {profile_api} (Prefect profile)"
    dash = os.environ.get("RECUT_DASHBOARD", DEFAULT_DASHBOARD)
    api = dash.rstrip("/") + "/api"
    if _healthy(api):
        os.environ["PREFECT_API_URL"] = api
        return f"server {api} (dashboard at {dash})"
    return "ephemeral (no Prefect server running; `recut dashboard` starts one)"


def boot_ephemeral() -> threading.Thread | None:
    """Start Prefect's ephemeral server in the background, if that is the mode.

    The server (a uvicorn subprocess, about 4 s here) then boots while the
    driver plans and starts Ray; join the thread before the first flow call.
    Prefect keeps one ephemeral server per process, so the flow reuses it.
    """
    if os.environ.get("PREFECT_API_URL"):
        return None
    try:
        from prefect.settings import get_current_settings

        if get_current_settings().api.url:
            return None
        from prefect.server.api.server import SubprocessASGIServer
    except Exception:  # noqa: BLE001
        return None
    th = threading.Thread(target=lambda: SubprocessASGIServer().start(), name="recut-prefect-boot", daemon=True)
    th.start()
    return th
