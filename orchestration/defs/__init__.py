"""Dagster definitions, one folder per area; loaded by `orchestration/definitions.py`."""
