"""Training-time code: PyTorch architecture, feature twin, data set, training loop and ONNX export (needs the `train` extra)."""
