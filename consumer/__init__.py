"""Downstream of the encoders: the sink stage that records the stream (sink) and the offline tools that
verify, decode and study recordings (offline)."""
