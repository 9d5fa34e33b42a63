"""Dagster definitions for the ml area."""
