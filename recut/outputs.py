"""Copy a spec's results from the store into its output folder (driver side).

For every edit (and sweep point): ``<slug>.mp4`` (and ``.npy``/``.gif`` when
asked), one ``metrics.json`` for the spec, and ``summary.json`` describing the
run.  Every file is written to a temporary name and renamed, so a killed run
never leaves a half-written output.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from recut.plan import SpecPlan
from recut.store import ArtifactRef


def _atomic_copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _atomic_write(dst: Path, text: str) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, dst)


def _sample_stage(chain: dict[str, str], kinds: dict[str, str]) -> str:
    """The last stage of kind ``sample`` in a chain is the output video."""
    samples = [name for name in chain if kinds.get(name) == "sample"]
    if not samples:
        raise RuntimeError("the engine declares no sample stage")
    return samples[-1]


def materialize(sp: SpecPlan, refs: dict[str, ArtifactRef], kinds: dict[str, str]) -> dict[str, Any]:
    out_dir = sp.output_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    formats = sp.spec.outputs.formats
    outputs: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    for inst, chain in sp.chains.items():
        sample = refs[chain[_sample_stage(chain, kinds)]]
        files: dict[str, str] = {}
        if "mp4" in formats:
            dst = out_dir / f"{inst.slug}.mp4"
            _atomic_copy(sample.file("video.mp4"), dst)
            files["mp4"] = str(dst)
        if "npy" in formats:
            dst = out_dir / f"{inst.slug}.npy"
            _atomic_copy(sample.file("frames.npy"), dst)
            files["npy"] = str(dst)
        if "gif" in formats:
            from recut import video

            dst = out_dir / f"{inst.slug}.gif"
            tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}.gif")
            video.write_gif(tmp, video.load_frames(sample.file("frames.npy")), sample.meta.get("fps", 8.0))
            os.replace(tmp, dst)
            files["gif"] = str(dst)
        m: dict[str, Any] = {}
        for name, key in chain.items():
            if kinds.get(name) == "evaluate":
                m.update(json.loads(refs[key].file("metrics.json").read_text()))
        metrics[inst.slug] = m
        outputs[inst.slug] = {
            "edit": inst.edit,
            "point": dict(inst.point),
            "files": files,
            "metrics": m,
            "stages": {name: key for name, key in chain.items()},
        }
    _atomic_write(out_dir / "metrics.json", json.dumps(metrics, indent=1, sort_keys=True))
    return {"spec": sp.path, "method": sp.spec.method, "output_dir": str(out_dir), "outputs": outputs}  # type: ignore[attr-defined]


def write_summary(out_dir: Path, summary: dict[str, Any]) -> Path:
    dst = out_dir / "summary.json"
    _atomic_write(dst, json.dumps(summary, indent=1, sort_keys=True))
    return dst
