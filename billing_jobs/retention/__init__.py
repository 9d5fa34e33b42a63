"""Retention and erasure: the retention policy, what expires from the ledger, and a customer's
erasure (personal data pseudonymized, what tax law keeps kept)."""
