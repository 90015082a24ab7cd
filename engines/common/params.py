"""Spec parameters several methods share (pydantic types and fields for their ``params`` models)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field

__all__ = ["GuidanceInterval", "check_guided", "check_interval", "guidance_interval_field"]


def check_interval(v: tuple[float, float]) -> tuple[float, float]:
    lo, hi = v
    if not 0.0 <= lo < hi <= 1.0:
        raise ValueError(f"must be [low, high] with 0 <= low < high <= 1, got [{lo}, {hi}]")
    return (float(lo), float(hi))


#: A guidance interval: noise levels, as fractions of the training timesteps, where guidance applies.
GuidanceInterval = Annotated[tuple[float, float], AfterValidator(check_interval)]


def guidance_interval_field() -> Any:
    """The ``guidance_interval`` parameter every sampling method shares (default: guide at every step)."""
    return Field(
        (0.0, 1.0),
        description="[low, high]: guide only at timesteps t with low <= t / T <= high (T the training "
        "timesteps, 1 = pure noise); elsewhere the prompt's prediction alone (guidance interval, "
        "Kynkaanniemi et al. 2024). [0.5, 1] keeps the layout, colour and motion guidance and "
        "stops guidance from rounding small shapes at low noise (the toy T2V: benchmarks/ZOO.md). low must "
        "stay below the strength, and below each cascade stage's strength: a run starting at t/T = strength "
        "<= low is never guided, and is refused.",
    )


def check_guided(interval: tuple[float, float], strength: float, guidance_scale: float) -> None:
    """Refuse a guidance interval that starts at or above the noise ``strength``: a run that starts
    at t = strength * T never reaches it, so no step would be guided (checked when guidance is on;
    strength 0 runs no step at all and passes)."""
    lo = interval[0]
    if guidance_scale > 1.0 and 0.0 < strength <= lo:
        raise ValueError(
            f"guidance_interval {list(interval)} starts at or above strength {strength}: the run starts at "
            f"t/T = {strength} and no step would be guided; lower the interval's low end below the strength, "
            "or set guidance_scale: 1"
        )
