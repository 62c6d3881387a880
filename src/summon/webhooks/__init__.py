"""Webhook delivery: the sender that turns outbox messages into signed HTTP deliveries."""
