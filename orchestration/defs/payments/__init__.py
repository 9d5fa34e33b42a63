"""Dagster definitions for payments: collection, retries, dunning, the janitor and alerts."""
