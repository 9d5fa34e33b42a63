"""paysight simulation package."""
