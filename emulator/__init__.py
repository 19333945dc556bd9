"""aetrig: streaming trigger emulation with autoencoders (encoder service and the `aetrig` command)."""

__version__ = "0.1.0"
