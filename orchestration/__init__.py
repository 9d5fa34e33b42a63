"""paysight orchestration package."""
