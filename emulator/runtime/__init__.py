"""The shared runtime every stage and tool uses (wire format, metrics, recording layout, signals,
ZeroMQ helpers, progress); it imports no stage."""
