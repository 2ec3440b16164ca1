"""Kernels of the layers: affine, ReLU, dropout, convolution, pooling, losses; norm/ holds the normalizations."""
