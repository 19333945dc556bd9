"""The encoder stage: ONNX Runtime scoring of micro-batches into latents, errors and flags."""
