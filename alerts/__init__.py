"""Alerts: rendering, raising (with dedupe) in the caller's transaction, and delivery with retries."""
