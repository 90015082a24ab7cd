"""``benchmarks/gpu.py --tiny``: the GPU benchmark's whole path (every method's stages, the step clock,
the extrapolation to the papers' step counts, the table) on the CPU with the tiny-random models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # ~40 s on 2 shared cores
def test_the_gpu_benchmark_runs_in_tiny_mode(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu.py"), "--tiny", "--json", str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    table = proc.stdout
    for method in ("sdedit", "videop2p", "dreamix", "gen1", "revideo"):
        assert f"| {method} |" in table, table
    assert "FAILED" not in table and "extrapolated" in table
    results = {r["method"]: r for r in json.loads(out.read_text())["results"]}
    p2p = results["videop2p"]["stages"]
    # a few steps ran and were timed; the paper's step counts are extrapolated and marked
    assert p2p["finetune"]["timed_steps"] == 2 and p2p["finetune"]["paper_steps"] == 500
    assert p2p["finetune"]["extrapolated"] and p2p["finetune"]["seconds"] > p2p["finetune"]["measured_s"]
    assert results["videop2p"]["paper"] == {"finetune": 300.0, "invert+nulltext": 360.0, "sample": 60.0}
    assert not results["gen1"]["stages"]["extract"]["extrapolated"]
    for r in results.values():
        assert r["edit_s"] > 0 and r["total_s"] >= r["edit_s"]
