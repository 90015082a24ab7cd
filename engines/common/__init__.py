"""Shared helpers for recut engines (metrics and friends)."""
