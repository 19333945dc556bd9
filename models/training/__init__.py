"""Making model directories (torch, onnx): architectures, training, ONNX export, the published
network's import, int8 quantisation and the k-scans."""
