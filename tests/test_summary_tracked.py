"""summary.json is what DVC tracks in an output folder: the same bytes whichever run wrote it (computed
or cached) and wherever the project lives; timings and store paths stay in the run's JSON (issue 26)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from recut.outputs import tracked_summary, write_summary

RUN = {
    "spec": "/home/a/proj/specs/edit.yaml",
    "method": "sdedit",
    "output_dir": "/home/a/proj/outputs/edit",
    "outputs": {"a": {"edit": "a", "files": {"mp4": "/home/a/proj/outputs/edit/a.mp4"}, "metrics": {"psnr": 30.0}}},
    "stages": [
        {
            "stage": "sample",
            "kind": "sample",
            "label": "sample[a]",
            "key": "k" * 64,
            "outputs": ["a"],
            "status": "computed",
            "seconds": 3.2,
            "wall_seconds": 3.9,
            "artifacts": {"frames.npy": "/home/a/proj/.recut/store/sample/kk/kkk/frames.npy"},
        }
    ],
    "contact_sheets": [{"edit": "a", "image": "/home/a/proj/outputs/edit/contact-a.png", "cells": []}],
}


def _run_at(root: Path, cached: bool) -> dict:
    """The run's summary for a project checked out at ``root`` (all cached, or computed)."""
    s = json.loads(json.dumps(RUN).replace("/home/a/proj", str(root)))
    if cached:
        s["stages"][0].update(status="cached", seconds=0.0, wall_seconds=0.01)
    return s


def test_the_tracked_summary_has_no_timings_statuses_or_absolute_paths() -> None:
    t = tracked_summary(Path(RUN["output_dir"]), RUN)
    text = json.dumps(t)
    assert "/home/a" not in text and "seconds" not in text and "status" not in text and "artifacts" not in text
    assert t["spec"] == "../../specs/edit.yaml" and t["outputs"]["a"]["files"] == {"mp4": "a.mp4"}
    assert t["stages"] == [
        {"stage": "sample", "kind": "sample", "label": "sample[a]", "key": "k" * 64, "outputs": ["a"]}
    ]
    assert t["contact_sheets"][0]["image"] == "contact-a.png"


def test_a_cached_rerun_of_a_clone_writes_the_same_bytes(tmp_path: Path) -> None:
    one, two = tmp_path / "proj", tmp_path / "ci" / "clone"
    for root, cached in ((one, False), (two, True)):
        (root / "outputs" / "edit").mkdir(parents=True)
        write_summary(root / "outputs" / "edit", _run_at(root, cached))
    a = (one / "outputs" / "edit" / "summary.json").read_bytes()
    assert a == (two / "outputs" / "edit" / "summary.json").read_bytes()
    shutil.rmtree(two)
