"""The honest baseline: run a spec's plan in ONE process, no Prefect, no Ray, no DVC.

Same engine code and same store artifacts as ``recut run``: the plan comes from
:func:`recut.plan.build_plan`, every node goes in plan order through one
:class:`recut.runner.StageRunner` (so each model loads once in this process),
and the outputs are copied into place with the same ``materialize`` the flow
uses.  Only the orchestration is missing.

    python benchmarks/plain_run.py SPEC [--store DIR] [--json]

Without ``--store`` (or $RECUT_STORE) a fresh temporary store is used.
"""

from __future__ import annotations

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", type=Path)
    ap.add_argument("--store", type=Path, default=None)
    ap.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    from recut.outputs import materialize, write_summary
    from recut.plan import build_plan
    from recut.runner import Job, StageRunner
    from recut.spec import load_spec
    from recut.store import ArtifactRef, Store

    t_import = time.perf_counter() - t0

    tmp_store = None
    store_root = args.store or (Path(os.environ["RECUT_STORE"]) if os.environ.get("RECUT_STORE") else None)
    if store_root is None:
        tmp_store = tempfile.mkdtemp(prefix="recut-plain-store-")
        store_root = Path(tmp_store)
    store_root = store_root.resolve()
    try:
        t1 = time.perf_counter()
        spec = load_spec(args.spec)
        store = Store(store_root)
        plan = build_plan([spec], store, set())
        t_plan = time.perf_counter() - t1

        runner = StageRunner(device="cpu")
        refs: dict[str, ArtifactRef] = {}
        stages = []
        t2 = time.perf_counter()
        for node in plan.ordered():
            job = Job(
                method=node.method,
                stage=node.stage.name,
                kind=node.kind,
                key=node.key,
                reads=node.reads,
                media=node.media,
                model=node.model,
                inputs={name: refs[key] for name, key in node.upstream.items()},
                force=node.forced,
                store_root=str(store_root),
                options=node.options,
            )
            was_cached = node.cached
            ts = time.perf_counter()
            refs[node.key] = runner.run(job)
            stages.append(
                {
                    "label": node.label,
                    "kind": node.kind,
                    "key": node.key,
                    "status": "cached" if was_cached else "computed",
                    "seconds": round(time.perf_counter() - ts, 4),
                }
            )
        t_compute = time.perf_counter() - t2

        t3 = time.perf_counter()
        kinds = {n.stage.name: n.kind for n in plan.ordered()}
        for sp in plan.specs:
            summary = materialize(sp, refs, kinds)
            write_summary(sp.output_dir, summary)
        t_outputs = time.perf_counter() - t3

        result = {
            "store": str(store_root),
            "import_seconds": round(t_import, 3),
            "plan_seconds": round(t_plan, 3),
            "compute_seconds": round(t_compute, 3),
            "outputs_seconds": round(t_outputs, 3),
            "wall_seconds": round(time.perf_counter() - T_START, 3),
            "computed": sum(1 for s in stages if s["status"] == "computed"),
            "cached": sum(1 for s in stages if s["status"] == "cached"),
            "loads": runner.loads,
            "stages": stages,
        }
        if args.json:
            print(json.dumps(result, indent=1))
        else:
            for s in stages:
                print(f"{s['status']:9s} {s['seconds']:8.2f}s  {s['label']}")
            print(
                f"compute {t_compute:.2f}s, imports {t_import:.2f}s, plan {t_plan:.2f}s, "
                f"outputs {t_outputs:.2f}s, loads {runner.loads}"
            )
        return 0
    finally:
        if tmp_store is not None:
            shutil.rmtree(tmp_store, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
