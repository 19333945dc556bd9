"""aetrig's core: the `aetrig` command (cli), the shared runtime every stage uses (runtime), the encoder
stage (encoder), the run supervisor (run), operations tools (ops) and the benchmark (bench)."""

__version__ = "0.1.0"
