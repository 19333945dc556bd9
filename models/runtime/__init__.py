"""The model-directory runtime (no torch): cards, thresholds, hashes, numpy normalisation and
features, ONNX Runtime evaluation, residual metrics, sample loading, calibration."""
