"""Seconds per training step of the toy T2I and T2V recipes, and what the training budget allows.

Runs the trainers themselves (:func:`toyworld.zoo.t2i.train`, :func:`toyworld.zoo.t2v.train`)
for ``--short`` and ``--long`` steps; the difference of the two fit times over the difference of
steps is the step time, free of data preparation and start-up.  Prints each step time, the
recipe's implied minutes, the T2V's step time as a multiple of the T2I's (a ratio that carries
from one machine to another, where minutes do not), and how many steps the budget holds at the
reference pace (benchmarks/ZOO.md, "The reference pace and the budget").  Run it alone on the
machine.

Usage: ``python benchmarks/zoo_step_cost.py [--threads 2] [--short 5] [--long 45] [--cache DIR]``
"""

from __future__ import annotations

import argparse
import tempfile

from toyworld.zoo import t2i, t2v

BUDGET_MIN = 90  # the zoo's training budget per model, in minutes at the reference pace
REFERENCE_T2I_STEP = 0.29  # s/step of the T2I recipe (2 threads) at the reference pace


def step_seconds(train, short: int, long: int, **kw) -> float:
    times = []
    for steps in (short, long):
        with tempfile.TemporaryDirectory() as out:
            info = train(out, steps=steps, log=None, **kw)
        times.append(info["fit_seconds"])
    return (times[1] - times[0]) / (long - short)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[2])
    ap.add_argument("--short", type=int, default=5)
    ap.add_argument("--long", type=int, default=45)
    ap.add_argument("--cache", help="folder memoising the training latents (as the trainers' --cache)")
    a = ap.parse_args()
    for th in a.threads:
        s_img = step_seconds(t2i.train, a.short, a.long, threads=th, cache=a.cache)
        print(
            f"threads {th}: T2I {s_img:.3f} s/step (batch {t2i.TRAIN_BATCH}); "
            f"{t2i.TRAIN_STEPS} steps = {s_img * t2i.TRAIN_STEPS / 60:.1f} min; "
            f"steps in {BUDGET_MIN} min at the reference pace: {BUDGET_MIN * 60 / REFERENCE_T2I_STEP:.0f}",
            flush=True,
        )
        s = step_seconds(t2v.train, a.short, a.long, threads=th, cache=a.cache)
        print(
            f"threads {th}: T2V {s:.3f} s/step (batch {t2v.TRAIN_BATCH}) = {s / s_img:.2f} T2I steps; "
            f"{t2v.TRAIN_STEPS} steps = {s * t2v.TRAIN_STEPS / 60:.1f} min; "
            f"steps in {BUDGET_MIN} min at the reference pace ({REFERENCE_T2I_STEP} s per T2I step): "
            f"{BUDGET_MIN * 60 / (REFERENCE_T2I_STEP * s / s_img):.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
