"""Parameter-name patterns (which weights a finetune trains): one reading for the finetune and the checks."""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["pattern_matcher"]


def pattern_matcher(pattern: str) -> Callable[[str], bool]:
    """A parameter-name pattern as a test: a substring, or ``re:<regex>`` searched for. Raises
    ``ValueError`` naming the pattern when the regex does not compile."""
    if pattern.startswith("re:"):
        try:
            rx = re.compile(pattern[3:])
        except re.error as exc:
            raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
        return lambda name: rx.search(name) is not None
    return lambda name: pattern in name
