"""The sink stage: receive scored messages, drop duplicates, write ROOT segments in durable group
commits, acknowledge."""
