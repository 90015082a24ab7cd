"""Seconds per training step of the toy depth recipe (benchmarks/RESULTS.md, the depth row).

Runs :func:`toyworld.zoo.depth.train` itself (batch 32, augmentation, ranking loss, EMA) on
200 scenes for ``--short`` and ``--long`` steps at each thread count; the difference of the two
training times over the difference of steps is the step time, free of rendering and start-up.
Prints the step time per thread count and the implied time of the recipe's ``TRAIN_STEPS``.
Run it alone on the machine.

Usage: ``python benchmarks/zoo_depth_step.py [--threads 1 2] [--short 10] [--long 110]``
"""

from __future__ import annotations

import argparse
import tempfile

from toyworld.zoo import depth


def step_seconds(threads: int, short: int, long: int) -> float:
    times = []
    for steps in (short, long):
        with tempfile.TemporaryDirectory() as out:
            info = depth.train(out, steps=steps, n_scenes=200, threads=threads, max_seconds=10**6)
        times.append(info["train_time_s"])
    return (times[1] - times[0]) / (long - short)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--short", type=int, default=10)
    ap.add_argument("--long", type=int, default=110)
    a = ap.parse_args()
    for t in a.threads:
        s = step_seconds(t, a.short, a.long)
        print(f"threads {t}: {s:.3f} s/step; {depth.TRAIN_STEPS} steps = {s * depth.TRAIN_STEPS / 60:.1f} min")


if __name__ == "__main__":
    main()
