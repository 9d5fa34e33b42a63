"""paysight billing_jobs package."""
