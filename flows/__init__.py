"""Prefect flows: `edit` (one spec), `batch` (many specs), over the stage graph."""
