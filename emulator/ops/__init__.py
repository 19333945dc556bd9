"""Operations tools: the Grafana dashboard definition, a local Prometheus, CurveZMQ keys."""
