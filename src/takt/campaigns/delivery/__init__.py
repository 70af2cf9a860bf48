"""Delivery: the channels messages leave through (SMTP for email, signed webhooks for the others)."""
