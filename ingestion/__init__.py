"""paysight ingestion package."""
