"""Dagster definitions for the transform area."""
