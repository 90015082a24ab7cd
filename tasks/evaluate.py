"""Task: Measure one edited video."""

from tasks._stage import stage_task

evaluate = stage_task("evaluate", "Measure one edited video.")
