"""Spec parameters several methods share (pydantic types and fields for their ``params`` models)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from engines.common.patterns import pattern_matcher

__all__ = [
    "MAX_FINETUNE_STEPS",
    "MAX_FRAMES",
    "MAX_STEPS",
    "PARAMS_CONFIG",
    "GuidanceInterval",
    "ParameterPatterns",
    "Params",
    "check_guided",
    "check_interval",
    "guidance_interval_field",
]

#: The model config of every params model: unknown keys are refused, and so is a float that is not
#: finite (``inf``, ``-inf``, ``nan``; also the strings "inf"/"nan" pydantic would parse) in any float
#: field, including the floats inside lists, tuples and dicts of that model.
PARAMS_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)

#: DDIM sampling steps: the most every scheduler config recut loads can run. Their models train on 1000
#: timesteps (SD 1.5, ModelScope, zeroscope, the toy and tiny-random models); DDIMScheduler.set_timesteps
#: refuses more than 1000, and at exactly 1000 the "leading" spacing with ``steps_offset: 1`` (SD 1.5 and
#: most of the others) asks for timestep 1000, past the last one (an IndexError inside the sampler).
MAX_STEPS = 999
#: Optimisation steps of a finetuning stage (the papers use 50-500; 100000 is hours on a GPU).
MAX_FINETUNE_STEPS = 100_000
#: Frames a stage may hold or process at once (the longest cascade and input clip recut accepts).
MAX_FRAMES = 4096


def _check_patterns(patterns: list[str]) -> list[str]:
    for p in patterns:
        pattern_matcher(p)
    return patterns


#: Names of the parameters a finetune trains: substrings or ``re:<regex>`` (each regex must compile).
ParameterPatterns = Annotated[list[str], AfterValidator(_check_patterns)]


class Params(BaseModel):
    """Base of the params models: :data:`PARAMS_CONFIG` (unknown keys and non-finite floats refused).

    A subclass's own ``model_config`` is merged into this one (pydantic v2), so
    ``model_config = ConfigDict(populate_by_name=True)`` keeps both rules.
    """

    model_config = PARAMS_CONFIG


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
