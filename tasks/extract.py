"""Task: Extract structure signals (depth, tracks, masks)."""

from tasks._stage import stage_task

extract = stage_task("extract", "Extract structure signals (depth, tracks, masks).")
