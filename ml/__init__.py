"""paysight ml package."""
