"""Dagster definitions for retention: the monthly retention job and its schedule."""
