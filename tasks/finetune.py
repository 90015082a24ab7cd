"""Task: Tune model weights on the input; the artifact is a weights delta."""

from tasks._stage import stage_task

finetune = stage_task("finetune", "Tune model weights on the input; the artifact is a weights delta.")
