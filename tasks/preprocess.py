"""Task: Decode, sample and resize the input media."""

from tasks._stage import stage_task

preprocess = stage_task("preprocess", "Decode, sample and resize the input media.")
