"""Dagster definitions for the ingestion area."""
