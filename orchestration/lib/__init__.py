"""Shared helpers for the orchestration layer (paths, settings, formatting)."""
