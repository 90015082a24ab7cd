"""Task: Invert the input to noise latents (and null-text embeddings)."""

from tasks._stage import stage_task

invert = stage_task("invert", "Invert the input to noise latents (and null-text embeddings).")
