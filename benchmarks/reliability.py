"""The reliability table of benchmarks/RESULTS.md: counts from the project's own fault tests.

Runs each group of tests with pytest and prints, per row, how many of its cases passed: runs killed
and resumed, corruptions of the store caught, concurrent runs, failing specs or edits isolated in a
batch, bad specs refused at validation.

Usage: ``python benchmarks/reliability.py`` (~3-5 min on 2 cores: the kill and concurrency tests start
Prefect and Ray).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

GROUPS: dict[str, list[str]] = {
    "kills survived (a killed `recut run` resumed; a Ray actor killed mid-stage replaced and retried)": [
        "tests/test_e2e.py::test_killed_run_resumes_from_completed_stages",
        "tests/test_worker_faults.py::test_an_actor_killed_mid_stage_is_replaced_and_the_stage_retried",
        "tests/test_e2e.py::test_a_terminated_run_leaves_no_prefect_server_behind",
    ],
    "store integrity cases (truncated, flipped byte, deleted file, no ref.json, full disk; intact hits, temp sweeps)": [
        "tests/test_store_integrity.py",
    ],
    "concurrent runs of one spec, both finished": ["tests/test_e2e.py::test_two_concurrent_runs_both_finish"],
    "failing specs / edits isolated in a batch (the others written), on the flows and in process": [
        "tests/test_batch_isolation.py",
        "tests/test_service.py::test_an_in_process_run_isolates_a_failing_edit",
    ],
    "DVC: two branches that ran different specs merged without a conflict, a clone's plain `dvc pull`, "
    "checkout of an older revision, the older layout converted": ["tests/test_dvc.py"],
    "bad specs refused at validation (field named, exit 2, nothing written)": [
        "tests/test_validation_gaps.py",
        "tests/test_revideo.py",
    ],
}
PATTERNS = {
    "bad specs refused": "-k refus or validat or bad or outside or wrong or empty or beyond or cannot or need or "
    "without",
}


def count(targets: list[str], extra: list[str]) -> tuple[int, int]:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", *targets, *extra, "-p", "no:cacheprovider"],
        cwd=REPO,
        capture_output=True,
        text=True,
    ).stdout
    passed = sum(int(n) for n in re.findall(r"(\d+) passed", out))
    failed = sum(int(n) for n in re.findall(r"(\d+) failed", out))
    return passed, failed


def main() -> None:
    print("| fault | cases passed | failed |")
    print("|---|---|---|")
    for name, targets in GROUPS.items():
        extra = next((p.split(" ", 1) for key, p in PATTERNS.items() if name.startswith(key)), [])
        passed, failed = count(targets, extra)
        print(f"| {name} | {passed} | {failed} |")


if __name__ == "__main__":
    main()
