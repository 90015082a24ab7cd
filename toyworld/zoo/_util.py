"""Small shared helpers for the zoo trainers (seeding, timing, info files, sizes)."""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

INFO_FILE = "zoo_info.json"


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_threads(n: int = 1) -> None:
    """One torch intra-op thread (or ``n``).  One is robust on a shared machine, where several
    OpenMP threads spin-wait against other processes; more pay off only on an idle machine (the
    trainers' ``--threads``)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be a whole number >= 1, got {n!r}")
    torch.set_num_threads(n)


def write_info(folder: str | Path, info: dict[str, Any]) -> None:
    Path(folder, INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_info(folder: str | Path) -> dict[str, Any]:
    p = Path(folder, INFO_FILE)
    return json.loads(p.read_text(encoding="utf-8")) if p.exists() else {}


def folder_size(folder: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


class Timer:
    def __init__(self) -> None:
        self.t0 = time.time()

    def elapsed(self) -> float:
        return time.time() - self.t0


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def progress(step: int, steps: int, timer: Timer, max_seconds: float) -> float:
    """Training progress in [0, 1]: the larger of the step fraction and the time fraction, so
    the schedule anneals on time when the machine is busy (the run is then not bit-reproducible;
    the info file records the steps actually done)."""
    return min(1.0, max(step / max(1, steps), timer.elapsed() / max_seconds))


def lr_at(p: float, base: float, warmup_frac: float = 0.03, floor: float = 0.03) -> float:
    """The LR at progress ``p`` in [0, 1]: a linear warm-up over ``warmup_frac``, then a cosine
    decay to ``floor`` x ``base``."""
    if p < warmup_frac:
        return base * max(p / warmup_frac, 0.01)
    q = (p - warmup_frac) / (1 - warmup_frac)
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * q)))


class EMA:
    """An exponential moving average of a model's parameters (decay warmed up as
    ``(1 + step) / (10 + step)``); ``copy_to`` writes it into the model. With ``into`` (a copy of the
    model) the average lives in that module's parameters, so it checkpoints as a module."""

    def __init__(self, model: torch.nn.Module, decay: float, into: torch.nn.Module | None = None):
        self.decay = decay
        if into is not None:
            self.shadow = [p.detach() for p in into.parameters()]
        else:
            self.shadow = [p.detach().clone() for p in model.parameters()]

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        torch._foreach_lerp_(self.shadow, [p.detach() for p in model.parameters()], 1 - d)

    @torch.no_grad()
    def copy_to(self, model: torch.nn.Module) -> None:
        for s, p in zip(self.shadow, model.parameters(), strict=True):
            p.copy_(s)


def save_float16(model: Any, folder: Path) -> None:
    """``model.save_pretrained(folder)`` with its weights in float16 (the zoo's size budget), leaving
    ``model`` as it was; the engines load them back as float32."""
    import copy

    copy.deepcopy(model).to(torch.float16).save_pretrained(folder)


def save_checkpoint(folder: Path, step: int, modules: dict[str, torch.nn.Module], opt: torch.optim.Optimizer) -> None:
    """Atomically write ``modules``' weights, the optimizer's Adam moments and ``step`` to ``folder``."""
    import os
    import shutil

    from safetensors.torch import save_file

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, m in modules.items():
        save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(tmp / f"{name}.safetensors"))
    moments: dict[str, torch.Tensor] = {}
    steps: dict[str, float] = {}
    for gi, group in enumerate(opt.param_groups):
        for pi, p in enumerate(group["params"]):
            st = opt.state.get(p)
            if st:
                moments[f"{gi}.{pi}.exp_avg"] = st["exp_avg"].contiguous()
                moments[f"{gi}.{pi}.exp_avg_sq"] = st["exp_avg_sq"].contiguous()
                steps[f"{gi}.{pi}"] = float(st["step"])
    save_file(moments, str(tmp / "optimizer.safetensors"))
    (tmp / "state.json").write_text(json.dumps({"step": step, "adam_steps": steps}))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def load_checkpoint(folder: Path, modules: dict[str, torch.nn.Module], opt: torch.optim.Optimizer | None) -> int:
    """Restore what :func:`save_checkpoint` wrote; returns the step (0 when ``folder`` does not exist)."""
    from safetensors.torch import load_file

    if not (folder / "state.json").exists():
        return 0
    for name, m in modules.items():
        m.load_state_dict(load_file(str(folder / f"{name}.safetensors")))
    state = json.loads((folder / "state.json").read_text())
    if opt is not None:
        moments = load_file(str(folder / "optimizer.safetensors"))
        for gi, group in enumerate(opt.param_groups):
            for pi, p in enumerate(group["params"]):
                k = f"{gi}.{pi}"
                if k in state["adam_steps"]:
                    opt.state[p] = {
                        "step": torch.tensor(state["adam_steps"][k]),
                        "exp_avg": moments[f"{k}.exp_avg"],
                        "exp_avg_sq": moments[f"{k}.exp_avg_sq"],
                    }
    return int(state["step"])


def save_tree(folder: Path, name: str, tree: Any) -> None:
    """A nested state (dicts, lists, tensors, numbers, strings) as ``name.safetensors`` (the tensors,
    keyed by their path) plus ``name.json`` (the rest, tensors replaced by their keys); no pickle."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}

    def walk(x: Any, path: str) -> Any:
        if isinstance(x, torch.Tensor):
            tensors[path] = x.detach().cpu().contiguous()
            return {"__tensor__": path}
        if isinstance(x, dict):
            return {
                "__dict__": [[walk(k, f"{path}.k{i}"), walk(v, f"{path}.{i}")] for i, (k, v) in enumerate(x.items())]
            }
        if isinstance(x, list | tuple):
            return {"__list__": [walk(v, f"{path}.{i}") for i, v in enumerate(x)], "tuple": isinstance(x, tuple)}
        return x

    meta = walk(tree, "s")
    save_file(tensors, str(Path(folder) / f"{name}.safetensors"))
    (Path(folder) / f"{name}.json").write_text(json.dumps(meta))


def load_tree(folder: Path, name: str) -> Any:
    """What :func:`save_tree` wrote."""
    from safetensors.torch import load_file

    tensors = load_file(str(Path(folder) / f"{name}.safetensors"))

    def build(x: Any) -> Any:
        if isinstance(x, dict) and "__tensor__" in x:
            return tensors[x["__tensor__"]]
        if isinstance(x, dict) and "__dict__" in x:
            return {build(k): build(v) for k, v in x["__dict__"]}
        if isinstance(x, dict) and "__list__" in x:
            items = [build(v) for v in x["__list__"]]
            return tuple(items) if x.get("tuple") else items
        return x

    return build(json.loads((Path(folder) / f"{name}.json").read_text()))


def write_model_folder(
    out: Path,
    fill: Any,
    links: dict[str, Path] | None = None,
    index: dict[str, Any] | None = None,
) -> None:
    """Write the model folder ``out`` whole: ``fill(staging)`` writes into a sibling staging folder,
    each of ``links`` (name -> folder) becomes a relative symlink, ``index`` becomes model_index.json;
    then the staging folder replaces ``out`` (:func:`recut.store.swap_in_folder`: a kill at any point
    leaves one whole folder)."""
    import os
    import shutil

    from recut.store import swap_in_folder

    staging = out.with_name(out.name + ".saving")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    fill(staging)
    for name, target in (links or {}).items():
        os.symlink(os.path.relpath(target, out.resolve()), staging / name)
    if index is not None:
        (staging / "model_index.json").write_text(json.dumps(index, indent=1))
    swap_in_folder(staging, out)
