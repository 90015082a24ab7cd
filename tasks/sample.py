"""Task: Produce one edited video."""

from tasks._stage import stage_task

sample = stage_task("sample", "Produce one edited video.")
