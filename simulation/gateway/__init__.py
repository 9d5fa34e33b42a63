"""The simulated gateway: a seeded Stripe-shaped payment gateway and its payers, owned by the simulator.

It implements the `Gateway` port (billing_jobs.payments.gateway) with SQLite-backed state, so the
demo world and the tests charge through the same code paths as Stripe and Razorpay.
"""
