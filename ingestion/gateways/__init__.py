"""Gateway adapters that implement the billing `Gateway` port (simulated, Stripe, Razorpay)."""
