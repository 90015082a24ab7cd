"""argparse value types shared by the zoo trainers' command lines.

Torch-free on purpose: :mod:`toyworld.zoo.recipes` imports this module to list recipes, and
listing must stay cheap.  Each type refuses a bad value with a message that quotes it, which
argparse prefixes with the option's name (``argument --threads: must be a whole number >= 1,
got '0'``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["fraction", "non_negative", "threads_arg", "whole"]


def non_negative(v: str) -> float:
    try:
        x = float(v)
    except ValueError:
        x = float("nan")
    if not x >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {v!r}")
    return x


def fraction(v: str) -> float:
    x = non_negative(v)
    if x > 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {v!r}")
    return x


def whole(minimum: int) -> Callable[[str], int]:
    """A whole number ``>= minimum``."""

    def parse(v: str) -> int:
        if not v.strip().isdigit() or int(v) < minimum:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum}, got {v!r}")
        return int(v)

    return parse


#: ``--threads``: torch intra-op threads, a whole number >= 1.
threads_arg = whole(1)
