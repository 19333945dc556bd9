"""The three studies of the report: a different sample, pre-compressed inputs, a very different signal."""
