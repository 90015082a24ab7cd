"""Prefect flows: `edit` (one spec), `batch` (many specs), over the stage graph; `scheduled` (a
schedule's run: its globs expanded, then one batch); `train` (the toy recipes)."""
