"""Iteration latency (issue 29): what a run costs beyond its compute, in every mode.

Whole-process wall times (`recut ...` as a subprocess, medians of ``--repeat`` runs) of the README
demo (`specs/examples/toy-recolour.yaml`) and of a Video-P2P example (`videop2p-wordswap.yaml`, its
tuning and inversion cached), in a scratch project with its own store:

- `recut plan` and `dvc status` (the "nothing to do" anchors);
- a no-op run (everything cached, outputs in place): ephemeral, against a running Prefect server
  (recorded there), and with the warm service up;
- a run with one edit's prompt changed (its sample and evaluation to compute): cold through the
  flows on Ray (`--executor ray`, the path before this issue), cold on the automatic choice (in
  process for a small run), and warm (`recut up` first).

Each row gives the median wall, its ratio to `recut plan`, the compute (the computed stages' own
seconds, from the run's JSON), and the overhead (wall - compute).

    python benchmarks/latency.py [--repeat 5] [--skip-server] [--json OUT]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SIZES = ("small", "large")
SHAPES = ("circle", "square", "triangle")
COLOURS = ("green", "blue", "yellow", "purple", "orange", "cyan", "white", "red")


def fresh_prompts() -> Any:
    """Prompts in the toy caption grammar that no example spec uses, so each run recomputes one sample."""
    used = "".join(p.read_text() for p in (REPO / "specs" / "examples").glob("*.yaml"))
    for shape, size, colour in itertools.product(SHAPES, SIZES, COLOURS):
        prompt = f"a {size} {colour} {shape} moving right over a plain white background"
        if prompt not in used:
            yield prompt


def recut(project: Path, env: dict[str, str], *args: str) -> tuple[float, dict[str, Any] | None]:
    t0 = time.perf_counter()
    res = subprocess.run([str(BIN / "recut"), *args], cwd=project, env=env, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(
            f"recut {' '.join(args)} failed ({res.returncode}):\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}"
        )
    data = None
    if "--json" in args:
        data = json.loads(res.stdout[res.stdout.index("{") :])
    return wall, data


def compute_seconds(summary: dict[str, Any] | None) -> float:
    if not summary:
        return 0.0
    return float(sum(s["seconds"] for s in summary.get("stages", []) if s["status"] == "computed"))


class Bench:
    def __init__(self, repeat: int, keep: bool):
        self.repeat = repeat
        self.root = Path(tempfile.mkdtemp(prefix="recut-latency-"))
        self.keep = keep
        (self.root / ".git").mkdir()
        (self.root / "specs").mkdir()
        self.env = dict(os.environ, RECUT_STORE=str(self.root / "store"), PREFECT_HOME=str(self.root / "prefect-home"))
        self.env.pop("PREFECT_API_URL", None)
        self.env["RECUT_DASHBOARD"] = "http://127.0.0.1:9"  # no dashboard: ephemeral unless a row sets a server
        self.rows: list[dict[str, Any]] = []
        self.plan_s = 0.0
        self.prompts = fresh_prompts()
        self.tweaks = itertools.count(1)

    def spec(self, name: str) -> Path:
        dst = self.root / "specs" / name
        shutil.copy(REPO / "specs" / "examples" / name, dst)
        return dst

    def change_prompt(self, spec: Path, edit: str) -> None:
        """Give ``edit`` a prompt the store has never seen (the line ``- {name: EDIT, prompt: ...}``
        or ``- name: EDIT`` followed by ``prompt: ...``)."""
        lines = spec.read_text().splitlines()
        new = next(self.prompts)
        for i, line in enumerate(lines):
            if f"name: {edit}," in line and "prompt:" in line:
                head = line[: line.index("prompt:")]
                lines[i] = f"{head}prompt: {new}}}"
                break
            if line.strip() == f"- name: {edit}":
                j = next(k for k in range(i + 1, len(lines)) if lines[k].strip().startswith("prompt:"))
                lines[j] = lines[j][: lines[j].index("prompt:")] + f"prompt: {new}"
                break
        else:
            raise ValueError(f"{spec}: edit {edit!r} not found")
        spec.write_text("\n".join(lines) + "\n")

    def change_edit(self, spec: Path) -> None:
        """Video-P2P: give the edit ``blue`` a cross-attention replacement fraction it never had (its
        prompt is tied to its blend word), so that its sample and evaluation recompute."""
        text = spec.read_text()
        old = "params: {blend: {source_words: [red], target_words: [blue]}"
        head = text.index(old) + len(old)
        end = text.index("}", head)
        new = f", cross_replace: {0.3 + next(self.tweaks) / 1000:.3f}"
        spec.write_text(text[:head] + new + text[end:])

    def row(self, name: str, walls: list[float], computes: list[float], note: str = "") -> None:
        wall = statistics.median(walls)
        comp = statistics.median(computes) if computes else 0.0
        self.rows.append(
            {
                "run": name,
                "wall_s": round(wall, 2),
                "x_plan": round(wall / self.plan_s, 2) if self.plan_s else None,
                "compute_s": round(comp, 2),
                "overhead_s": round(wall - comp, 2),
                "runs": len(walls),
                "note": note,
            }
        )
        print(f"{name:<48} {wall:6.2f} s  compute {comp:5.2f} s  overhead {wall - comp:5.2f} s  {note}", flush=True)

    def measure(
        self, name: str, *args: str, before: Any = None, note: str = "", env: dict[str, str] | None = None
    ) -> None:
        walls, comps = [], []
        for _ in range(self.repeat):
            if before is not None:
                before()
            wall, data = recut(self.root, env or self.env, *args, "--json")
            walls.append(wall)
            comps.append(compute_seconds(data))
        self.row(name, walls, comps, note)

    # ------------------------------------------------------------------ the rows

    def run(self, skip_server: bool) -> list[dict[str, Any]]:
        toy = self.spec("toy-recolour.yaml")
        p2p = self.spec("videop2p-wordswap.yaml")
        rel, rel_p2p = str(toy.relative_to(self.root)), str(p2p.relative_to(self.root))
        # fill the store (not measured)
        recut(self.root, self.env, "run", rel, "--no-dvc", "--json")
        recut(self.root, self.env, "run", rel_p2p, "--no-dvc", "--json")

        walls = [recut(self.root, self.env, "plan", rel)[0] for _ in range(self.repeat)]
        self.plan_s = statistics.median(walls)
        self.row("recut plan (toy-recolour)", walls, [])
        if shutil.which("dvc", path=str(BIN)) and (REPO / ".dvc").is_dir():
            t = []
            for _ in range(self.repeat):
                t0 = time.perf_counter()
                subprocess.run([str(BIN / "dvc"), "status", "-q"], cwd=REPO, capture_output=True)
                t.append(time.perf_counter() - t0)
            self.row("dvc status (this repo)", t, [], "anchor")

        self.measure("no-op run, ephemeral", "run", rel, "--no-dvc")
        self.measure(
            "changed prompt, cold, flows on Ray (--executor ray)",
            "run",
            rel,
            "--no-dvc",
            "--executor",
            "ray",
            before=lambda: self.change_prompt(toy, "blue"),
        )
        self.measure(
            "changed prompt, cold, auto (in process)",
            "run",
            rel,
            "--no-dvc",
            before=lambda: self.change_prompt(toy, "blue"),
        )
        self.measure(
            "videop2p changed edit, cold, auto",
            "run",
            rel_p2p,
            "--no-dvc",
            before=lambda: self.change_edit(p2p),
        )
        self.service_rows(toy, rel, p2p, rel_p2p)
        if not skip_server:
            self.server_rows(rel)
        return self.rows

    def service_rows(self, toy: Path, rel: str, p2p: Path, rel_p2p: str) -> None:
        recut(self.root, self.env, "up")
        try:
            # the first warm run of each model loads it; the rows measure the runs after that
            self.change_prompt(toy, "blue")
            recut(self.root, self.env, "run", rel, "--no-dvc", "--json")
            self.change_edit(p2p)
            recut(self.root, self.env, "run", rel_p2p, "--no-dvc", "--json")
            self.measure("no-op run, warm service", "run", rel, "--no-dvc")
            self.measure(
                "changed prompt, warm service", "run", rel, "--no-dvc", before=lambda: self.change_prompt(toy, "blue")
            )
            self.measure(
                "videop2p changed edit, warm service",
                "run",
                rel_p2p,
                "--no-dvc",
                before=lambda: self.change_edit(p2p),
            )
        finally:
            recut(self.root, self.env, "down")

    def server_rows(self, rel: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = dict(self.env, PREFECT_SERVER_ANALYTICS_ENABLED="false")
        server = subprocess.Popen(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        api = f"http://127.0.0.1:{port}/api"
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    import urllib.request

                    with urllib.request.urlopen(api + "/health", timeout=1):
                        break
                except OSError:
                    time.sleep(0.5)
            self.measure(
                "no-op run, against a Prefect server (recorded)",
                "run",
                rel,
                "--no-dvc",
                env=dict(env, PREFECT_API_URL=api),
            )
        finally:
            os.killpg(server.pid, 15)
            server.wait(timeout=30)

    def close(self) -> None:
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)


def table(rows: list[dict[str, Any]]) -> str:
    out = ["| run | wall (median) | x recut plan | compute | overhead |", "|---|---|---|---|---|"]
    for r in rows:
        x = f"{r['x_plan']:.2f}" if r["x_plan"] is not None else "-"
        out.append(f"| {r['run']} | {r['wall_s']:.2f} s | {x} | {r['compute_s']:.2f} s | {r['overhead_s']:.2f} s |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--skip-server", action="store_true", help="skip the row against a Prefect server")
    ap.add_argument("--keep", action="store_true", help="keep the scratch project")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    bench = Bench(args.repeat, args.keep)
    try:
        rows = bench.run(args.skip_server)
    finally:
        bench.close()
    print()
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
