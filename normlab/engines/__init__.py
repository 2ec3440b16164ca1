"""Other engines and checks: the PyTorch construction, the NumPy/PyTorch cross-check, the gradient-check suite."""
