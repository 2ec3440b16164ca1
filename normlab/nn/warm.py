"""Compile every Numba kernel once, so no later process pays for it: ``python -m normlab.nn.warm``.

Runs each layer, update rule and loss that has a fast path through its public
function, in float32 and float64, on an input of one block and on one of
several (the two code paths), which compiles (or loads from the cache) every
kernel they use. ``make setup`` runs it after installing; without Numba it
says so and does nothing.
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

from . import backend

__all__ = ["warm"]

# One block, and several blocks with threads (above _jit.SERIAL_BYTES in float32).
_ROWS = (8, 6000)


def _batchnorm(forward, backwards, x, g, b) -> None:
    """Train and test mode (running statistics from one train step), each backward of the layer."""
    for mode in ("train", "test"):
        p = {"mode": "train"}
        out, cache = forward(x, g, b, p)
        p["mode"] = mode
        out, cache = forward(x, g, b, p)
        for backward in backwards:
            backward(out, cache)


def _norm_layers(dtype) -> None:
    from ..layers import (batchnorm_backward, batchnorm_backward_alt, batchnorm_forward, layernorm_backward,
                          layernorm_forward, spatial_batchnorm_backward, spatial_batchnorm_forward,
                          spatial_groupnorm_backward, spatial_groupnorm_forward)
    rng = np.random.default_rng(0)
    for rows in _ROWS:
        x = rng.standard_normal((rows, 64)).astype(dtype)
        g, b = np.ones(64, dtype), np.zeros(64, dtype)
        _batchnorm(batchnorm_forward, (batchnorm_backward_alt, batchnorm_backward), x, g, b)
        out, cache = layernorm_forward(x, g, b, {})
        layernorm_backward(out, cache)
        x4 = rng.standard_normal((max(2, rows // 100), 8, 14, 14)).astype(dtype)
        g4, b4 = np.ones(8, dtype), np.zeros(8, dtype)
        _batchnorm(spatial_batchnorm_forward, (spatial_batchnorm_backward,), x4, g4, b4)
        out, cache = spatial_groupnorm_forward(x4, g4.reshape(1, 8, 1, 1), b4.reshape(1, 8, 1, 1), 2, {})
        spatial_groupnorm_backward(out, cache)


def _updates_and_loss(dtype) -> None:
    from .. import optim
    from ..layers import softmax_loss
    rng = np.random.default_rng(0)
    for size in (7, 300_000):
        w = rng.standard_normal(size).astype(dtype)
        dw = rng.standard_normal(size).astype(dtype)
        for rule in (optim.sgd, optim.sgd_momentum, optim.adam):
            config = None
            for _ in range(2):
                w, config = rule(w, dw, config)
    scores = rng.standard_normal((50, 10)).astype(dtype)
    softmax_loss(scores, rng.integers(0, 10, 50))


def warm() -> list[str]:
    """Run every fast path once per dtype; returns what was warmed, [] without Numba."""
    if not backend.fast():
        return []
    done = []
    from . import _jit_ops
    with backend.using("numba"):
        for dtype in (np.float32, np.float64):
            _norm_layers(dtype)
            _updates_and_loss(dtype)
            done.append(np.dtype(dtype).name)
        _jit_ops.warm()   # the rules and helpers the public calls above did not reach (Nesterov, RMSProp, ...)
    return done


def main() -> int:
    t0 = time.perf_counter()
    done = warm()
    if not done:
        print(f"normlab: Numba backend not in use ({backend.active()}); nothing to compile", file=sys.stderr)
        return 0
    print(f"normlab: Numba kernels ready for {', '.join(done)} in {time.perf_counter() - t0:.1f} s "
          f"(cache: {os.environ.get('NUMBA_CACHE_DIR', backend.cache_dir())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
