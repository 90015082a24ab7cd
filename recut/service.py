"""The warm service: one long-lived local process that keeps Ray, the loaded models and (with a server) Prefect.

`recut up` starts it (detached) for a project; `recut run` then sends it the run and prints the
result, so a run pays neither Prefect's import and boot nor Ray's start-up nor a model load that an
earlier run already paid. `recut status` shows it; `recut down` stops it.

- The service runs every run inside its own (long-lived) process, on the same Ray worker pool as a
  cold run, one run at a time; a second client waits its turn.
- Prefect: what :func:`recut.prefect_env.configure` picks in the service's environment. With a
  server (`recut dashboard`, ``PREFECT_API_URL``) every run is a flow recorded there; otherwise no
  dashboard could show a run, so the service starts no Prefect and walks the plan on the same pool
  (:func:`recut.launch.run_on_pool`: the same stages, store, outputs and DVC record).
- It listens on 127.0.0.1 only, on a port chosen by the OS, and accepts only clients that present the
  random key in its state file ``<project>/.recut/service.json`` (mode 0600), through
  :mod:`multiprocessing.connection`'s challenge.
- A client that finds a state file whose service does not answer (killed, machine restarted) says
  so in one line, removes the file, and runs cold.

The specs are validated and planned by the client (errors print there); the service re-plans with
its own store view. The service uses the environment of `recut up` (RECUT_STORE, model caches).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any

from recut.gitignore import ignore_in_git

STATE = Path(".recut") / "service.json"
LOG = Path(".recut") / "service.log"
#: How long `recut up` waits for the service to answer (it starts Prefect and Ray).
START_TIMEOUT_S = 120.0


def state_file(project: Path) -> Path:
    return project / STATE


def read_state(project: Path) -> dict[str, Any] | None:
    try:
        return json.loads(state_file(project).read_text())
    except (OSError, ValueError):
        return None


def _connect(state: dict[str, Any]) -> Connection:
    return Client((state["host"], int(state["port"])), authkey=bytes.fromhex(state["key"]))


def _rss_mib(pid: int) -> float | None:
    """Resident memory of a process, from /proc (Linux); None elsewhere or when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError):
        return None
    return None


# --------------------------------------------------------------------------- client side


class Warm:
    """A connection-less handle on a running service (each call opens its own connection)."""

    def __init__(self, project: Path, state: dict[str, Any]):
        self.project = project
        self.state = state

    @property
    def records(self) -> bool:
        """Whether the service's Prefect is a server that a dashboard shows."""
        from recut.prefect_env import records

        return records(self.state.get("prefect", ""))

    def call(self, msg: tuple[Any, ...], on_event: Callable[[tuple[Any, ...]], None] | None = None) -> Any:
        conn = _connect(self.state)
        try:
            conn.send(msg)
            while True:
                reply = conn.recv()
                if reply[0] == "event":
                    if on_event is not None:
                        on_event(reply[1])
                    continue
                if reply[0] == "error":
                    raise RuntimeError(reply[1])
                return reply[1]
        finally:
            conn.close()

    def run(self, paths: list[str], force: list[str], store_root: str, dvc: bool) -> dict[str, Any]:
        """Run the specs in the service, forwarding its progress events to this process's sink."""
        from recut import progress

        sink = progress.sink()

        def forward(event: tuple[Any, ...]) -> None:
            getattr(sink, event[0])(*event[1:])

        return dict(self.call(("run", paths, force, store_root, dvc), forward))

    def status(self) -> dict[str, Any]:
        return dict(self.call(("status",)))

    def down(self) -> None:
        self.call(("down",))


def attach(start: Path, notice: Callable[[str], None] | None = None) -> Warm | None:
    """The project's running service, or None. A state file whose service does not answer is removed
    (``notice`` says so in one line): the caller runs cold."""
    from recut.spec import find_project_root

    project = find_project_root(start)
    state = read_state(project)
    if state is None:
        return None
    warm = Warm(project, state)
    try:
        warm.call(("ping",))
    except (OSError, EOFError, ValueError) as exc:
        state_file(project).unlink(missing_ok=True)
        if notice is not None:
            notice(f"recut service (pid {state.get('pid')}) is not answering ({type(exc).__name__}); running cold")
        return None
    return warm


def up(project: Path, timeout: float = START_TIMEOUT_S) -> Warm:
    """Start the project's service (detached) unless one answers; wait until it answers."""
    warm = attach(project)
    if warm is not None:
        return warm
    (project / ".recut").mkdir(exist_ok=True)
    log = open(project / LOG, "ab")  # handed to the child
    proc = subprocess.Popen(
        [sys.executable, "-m", "recut.service", str(project)],
        cwd=project,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # outlives this command and its terminal
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the service exited with code {proc.returncode} while starting; see {project / LOG}")
        state = read_state(project)
        if state is not None and state.get("pid") == proc.pid:
            warm = attach(project)
            if warm is not None:
                return warm
        time.sleep(0.2)
    proc.terminate()
    raise TimeoutError(f"the service did not answer within {timeout:.0f} s; see {project / LOG}")


def down(project: Path, timeout: float = 30.0) -> int | None:
    """Stop the project's service; returns its pid, or None when none was running."""
    warm = attach(project)
    if warm is None:
        return None
    pid = int(warm.state["pid"])
    try:
        warm.down()
    except (OSError, EOFError):
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, 15)
    state_file(project).unlink(missing_ok=True)
    return pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie (our own exited child, not yet reaped) counts as gone
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return True


# --------------------------------------------------------------------------- the service


class Service:
    """The service process's state: Prefect configured, the worker pool, a run lock."""

    def __init__(self, project: Path):
        from recut import prefect_env

        self.project = project
        self.mode = prefect_env.configure()
        #: Whether a Prefect server (that a dashboard shows) records the runs. Without one nobody would
        #: see them: the runs walk the plan on the pool with no Prefect at all (launch.run_on_pool).
        self.records = prefect_env.records(self.mode)
        from recut.registry import methods
        from recut.workers import get_pool

        self.pool = get_pool()
        self.pool.warm(sorted(methods()))
        if self.records:  # Prefect and the flows are imported now, not in the first run
            import flows.batch
            import flows.edit  # noqa: F401
        else:
            import recut.outputs  # noqa: F401  (the run's imports, paid now)

        self.started = time.time()
        self.runs = 0
        self._run_lock = threading.Lock()
        self._stop = threading.Event()

    def handle(self, conn: Connection) -> None:
        try:
            msg = conn.recv()
            if msg[0] == "ping":
                conn.send(("ok", {"pid": os.getpid()}))
            elif msg[0] == "status":
                conn.send(("ok", self.status()))
            elif msg[0] == "run":
                conn.send(("ok", self.run(conn, *msg[1:])))
            elif msg[0] == "down":
                conn.send(("ok", None))
                self._stop.set()
            else:
                conn.send(("error", f"unknown request {msg[0]!r}"))
        except (EOFError, OSError):
            pass
        except Exception as exc:  # noqa: BLE001 - the client prints it; the service lives on
            try:
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
            except OSError:
                pass
        finally:
            conn.close()

    def run(self, conn: Connection, paths: list[str], force: list[str], store_root: str, dvc: bool) -> dict[str, Any]:
        from recut import launch, progress

        sending = threading.Lock()  # stages report from several task threads; a Connection is not thread-safe

        def send(event: tuple[Any, ...]) -> None:
            with sending:
                conn.send(("event", event))

        class Forward:
            def start(self, key: str, label: str, kind: str) -> None:
                send(("start", key, label, kind))

            def step(self, key: str, step: int, total: int) -> None:
                send(("step", key, step, total))

            def done(self, key: str, status: str, seconds: float) -> None:
                send(("done", key, status, seconds))

        with self._run_lock:  # one run at a time: the progress sink is process-wide
            progress.set_sink(Forward())
            try:
                loads_before = _total_loads(self.pool.stats())
                if self.records:
                    summary = launch.run_flows(paths, force, store_root, dvc, [])
                else:
                    summary = launch.run_on_pool(paths, force, store_root, dvc)
            finally:
                progress.set_sink(None)
            self.runs += 1
        how = "flows" if self.records else "no Prefect: nothing would show the run"
        summary["prefect"] = f"{self.mode} (warm service, pid {os.getpid()}; {how})"
        summary["model_loads"] = _total_loads(summary.get("workers", [])) - loads_before
        return summary

    def status(self) -> dict[str, Any]:
        workers = self.pool.stats()
        for w in workers:
            w["rss_mib"] = _rss_mib(int(w["pid"]))
        return {
            "pid": os.getpid(),
            "project": str(self.project),
            "uptime_s": round(time.time() - self.started, 1),
            "runs": self.runs,
            "prefect": self.mode,
            "rss_mib": _rss_mib(os.getpid()),
            "workers": workers,
        }

    def serve(self) -> None:
        key = secrets.token_bytes(32)
        listener = Listener(("127.0.0.1", 0), authkey=key)
        host, port = listener.address
        state = {"pid": os.getpid(), "host": host, "port": port, "key": key.hex(), "prefect": self.mode}
        path = state_file(self.project)
        tmp = path.with_name(f".service.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(state))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        ignore_in_git(path.parent, [f"/{STATE.name}", f"/{LOG.name}"])

        def accept() -> None:
            while not self._stop.is_set():
                try:
                    conn = listener.accept()
                except Exception:  # noqa: BLE001 - a client that failed the key challenge, or the listener closed
                    continue
                threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

        threading.Thread(target=accept, name="recut-service-accept", daemon=True).start()
        try:
            self._stop.wait()
        finally:
            state_now = read_state(self.project)
            if state_now is not None and state_now.get("pid") == os.getpid():
                path.unlink(missing_ok=True)
            listener.close()
            from recut.workers import shutdown_pool

            shutdown_pool()


def _total_loads(workers: list[dict[str, Any]]) -> int:
    return sum(int(n) for w in workers for n in (w.get("loads") or {}).values())


def main(argv: list[str] | None = None) -> None:
    import signal

    args = argv if argv is not None else sys.argv[1:]
    project = Path(args[0]).resolve()
    service = Service(project)
    signal.signal(signal.SIGTERM, lambda *_: service._stop.set())
    print(f"recut service pid {os.getpid()} for {project}: {service.mode}", flush=True)
    service.serve()


if __name__ == "__main__":
    main()
