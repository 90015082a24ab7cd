"""Prefect tasks: one thin adapter per stage kind (see tasks/_stage.py)."""

from tasks.evaluate import evaluate
from tasks.extract import extract
from tasks.finetune import finetune
from tasks.invert import invert
from tasks.preprocess import preprocess
from tasks.sample import sample

TASKS = {
    "preprocess": preprocess,
    "extract": extract,
    "finetune": finetune,
    "invert": invert,
    "sample": sample,
    "evaluate": evaluate,
}

__all__ = ["TASKS", "evaluate", "extract", "finetune", "invert", "preprocess", "sample"]
