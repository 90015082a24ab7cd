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
    """One intra-op thread (or ``n``): on a shared 2-core machine two OpenMP threads spin-wait
    against other processes and run 20-50x slower (measured); one thread is robust.  More threads
    pay off only on an idle machine (the trainers' ``--threads``: the T2I measured 0.29 s/step with
    2 threads against 0.475 with 1)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be a whole number >= 1, got {n!r}")
    torch.set_num_threads(n)


def cosine_lr(step: int, total: int, base: float, warmup: int = 100, floor: float = 0.05) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


def write_info(folder: str | Path, info: dict[str, Any]) -> None:
    Path(folder, INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def continue_info(info: dict[str, Any], prior: dict[str, Any], train_time: float) -> dict[str, Any]:
    """Record in ``info`` the run it continued from (``prior``: that folder's info file)."""
    if prior:
        info["continued_from"] = {k: prior.get(k) for k in ("steps", "train_time_s", "metrics", "continued_from")}
        info["total_train_time_s"] = round(
            train_time + prior.get("total_train_time_s", prior.get("train_time_s", 0)), 1
        )
    return info


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
    if p < warmup_frac:
        return base * max(p / warmup_frac, 0.01)
    q = (p - warmup_frac) / (1 - warmup_frac)
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * q)))


class EMA:
    """An exponential moving average of a model's parameters (decay warmed up as
    ``(1 + step) / (10 + step)``); ``copy_to`` writes it into the model."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = [p.detach().clone() for p in model.parameters()]

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        torch._foreach_lerp_(self.shadow, [p.detach() for p in model.parameters()], 1 - d)

    @torch.no_grad()
    def copy_to(self, model: torch.nn.Module) -> None:
        for s, p in zip(self.shadow, model.parameters(), strict=True):
            p.copy_(s)
