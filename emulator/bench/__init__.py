"""`aetrig bench`: throughput, latency, CPU cost and memory of the encoder in-process, as a service, in the pipeline."""
