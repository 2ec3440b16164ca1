"""One epoch of the PyTorch notebook's MLP on Fashion-MNIST: normlab's NumPy engine vs plain PyTorch.

    .venv/bin/python benchmarks/mlp_epoch.py [--epochs N] [--quick] [--repeats R]
                                             [--backends numba,numpy] [--json PATH]

The net (train-eval-mode's, the notebook's): 784-512-256-10, ``Linear(bias=False)
- BatchNorm1d - ReLU`` twice, then ``Linear``; cross-entropy, SGD lr 0.01, batch
64, float32, no weight decay. Both sides:

- normlab: ``FullyConnectedNet(normalization="batchnorm", bias_before_norm=False,
  dtype=float32, reg=0)`` trained by normlab's ``Solver`` (update rule 'sgd'),
  once per backend in ``--backends`` (``normlab.nn.backend.using``).
- torch: ``nn.Sequential(nn.Linear, nn.BatchNorm1d, nn.ReLU, ...)``, the same
  initial weights, ``nn.CrossEntropyLoss``, ``torch.optim.SGD(lr=0.01)``; the
  loop a notebook writes (zero_grad, forward, loss, backward, step, loss.item()).

Same data and order for both: the training images scaled to [0, 1] in float32
by normlab's own loader (``load_fashion_mnist``, no mean subtraction),
flattened to (N, 784); epoch ``e`` visits the ``e``-th
``np.random.default_rng(0).permutation(N)`` in batches of 64, the remainder
dropped (the Solver's schedule, which the torch loop replays). ``--quick``:
the first 6400 images.

Timing: one thread each (OPENBLAS/OMP/MKL_NUM_THREADS=1 and
NORMLAB_NUM_THREADS=1 set before NumPy loads when run as a script;
``torch.set_num_threads(1)``). Only the training loop is timed, not loading or
building the nets; every side is warmed up on a few batches first (Numba's
kernels compile or load, torch allocates), then the sides run in turns,
``--repeats`` times, and the best (minimum) of the repeats is reported:
noise on a shared machine only ever adds time. The Solver's accuracy checks
(at epoch 0 and after each epoch, on one batch of 64 images) are part of its
timed ``train()``; they cost a few forward passes.

``measure(quick, epochs)`` returns the numbers as a dict, for other scripts;
they should pin the thread variables before importing NumPy, as ``main`` does.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

# normlab's thread policy: every BLAS/OpenMP variable and the kernels' own (imports no numpy).
from normlab._threads import KERNEL_THREADS_VAR, THREAD_VARS as _BLAS_VARS  # noqa: E402

THREAD_VARS = _BLAS_VARS + (KERNEL_THREADS_VAR,)

if __name__ == "__main__":
    # BLAS and OpenMP read these once, when the library loads: pin them before the imports below.
    for _var in THREAD_VARS:
        os.environ[_var] = "1"

import numpy as np  # noqa: E402

DIMS = (784, 512, 256, 10)
BATCH, LEARNING_RATE, SEED = 64, 0.01, 0
QUICK_IMAGES = 6400
WARMUP_BATCHES = 20


def load_images(quick: bool) -> tuple[np.ndarray, np.ndarray]:
    """(X (N, 784) float32 in [0, 1], y (N,) int64): Fashion-MNIST's training images by normlab's loader."""
    from normlab.data.mnist import load_fashion_mnist
    n = QUICK_IMAGES if quick else 60000
    # flatten here, not by the loader: its flatten=True cannot reshape the empty val/test splits
    data = load_fashion_mnist(num_training=n, num_validation=0, num_test=0, subtract_mean=False, dtype=np.float32)
    return np.ascontiguousarray(data["X_train"].reshape(n, -1)), data["y_train"]


def batch_orders(n: int, epochs: int) -> list[np.ndarray]:
    """The Solver's minibatch order: epoch e is the e-th permutation of default_rng(SEED)."""
    rng = np.random.default_rng(SEED)
    return [rng.permutation(n) for _ in range(epochs)]


def normlab_model():
    from normlab.models import FullyConnectedNet
    return FullyConnectedNet(list(DIMS[1:-1]), input_dim=DIMS[0], num_classes=DIMS[-1], normalization="batchnorm",
                             bias_before_norm=False, weight_scale=2.5e-2, reg=0.0, dtype=np.float32, rng_seed=SEED)


def normlab_run(X, y, epochs: int, backend: str):
    """A function training a fresh normlab net with the Solver for ``epochs`` epochs; returns its last loss."""
    from normlab.nn import backend as nb
    from normlab.solver import Solver

    def build():
        data = {"X_train": X, "y_train": y, "X_val": X[:BATCH], "y_val": y[:BATCH]}
        return Solver(normlab_model(), data, update_rule="sgd", optim_config={"learning_rate": LEARNING_RATE},
                      batch_size=BATCH, num_epochs=epochs, num_train_samples=BATCH, verbose=False, seed=SEED,
                      restore_best=False)

    def run():
        solver = build()
        with nb.using(backend):
            t0 = time.perf_counter()
            solver.train()
            elapsed = time.perf_counter() - t0
        assert solver.status == "finished", solver.divergence_reason
        return elapsed, solver.loss_history[-1]
    return run


def torch_run(torch, X, y, epochs: int):
    """A function training a fresh torch net (normlab's initial weights) for ``epochs`` epochs."""
    nn = torch.nn
    X_t, y_t = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
    orders = [torch.from_numpy(o) for o in batch_orders(len(X), epochs)]
    per_epoch = max(len(X) // BATCH, 1)

    def build():
        p = normlab_model().params
        layers = []
        for i in range(1, len(DIMS) - 1):
            layers += [nn.Linear(DIMS[i - 1], DIMS[i], bias=False), nn.BatchNorm1d(DIMS[i]), nn.ReLU()]
        layers.append(nn.Linear(DIMS[-2], DIMS[-1]))
        net = nn.Sequential(*layers)
        linears = [m for m in net if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for i, lin in enumerate(linears, 1):
                lin.weight.copy_(torch.from_numpy(p[f"W{i}"].T))   # normlab W is (in, out)
            linears[-1].bias.copy_(torch.from_numpy(p[f"b{len(linears)}"]))
        return net.train()

    def run():
        net = build()
        opt = torch.optim.SGD(net.parameters(), lr=LEARNING_RATE)
        loss_fn = nn.CrossEntropyLoss()
        t0 = time.perf_counter()
        for order in orders:
            for i in range(per_epoch):
                idx = order[i * BATCH:(i + 1) * BATCH]
                opt.zero_grad()
                loss = loss_fn(net(X_t[idx]), y_t[idx])
                loss.backward()
                opt.step()
                last = loss.item()
        return time.perf_counter() - t0, last
    return run


def measure(quick: bool, epochs: int, *, repeats: int = 1, backends=("numba", "numpy"),
            torch_side: bool = True) -> dict:
    """Seconds per epoch of normlab (per backend) and torch, and their ratios normlab / torch.

    Returns ``{"images", "epochs", "steps_per_epoch", "repeats", "normlab": {backend: {"epoch_s",
    "step_ms", "final_loss", "runs_s"}}, "torch": {...} or None, "ratio": {backend: float or None}}``;
    ``runs_s`` are the seconds of every timed run (of ``epochs`` epochs). ``torch_side=False`` times
    normlab alone (torch is then not imported).
    """
    torch = None
    if torch_side:
        import torch
        torch.set_num_threads(1)
    X, y = load_images(quick)
    steps = max(len(X) // BATCH, 1)
    sides = {f"normlab-{b}": normlab_run(X, y, epochs, b) for b in backends}
    if torch_side:
        sides["torch"] = torch_run(torch, X, y, epochs)
    warm_X, warm_y = X[:WARMUP_BATCHES * BATCH], y[:WARMUP_BATCHES * BATCH]
    warm = {f"normlab-{b}": normlab_run(warm_X, warm_y, 1, b) for b in backends}
    if torch_side:
        warm["torch"] = torch_run(torch, warm_X, warm_y, 1)
    for fn in warm.values():
        fn()
    samples = {name: [] for name in sides}
    losses = {}
    for _ in range(repeats):
        for name, fn in sides.items():
            elapsed, losses[name] = fn()
            samples[name].append(elapsed)

    def summary(name):
        best = min(samples[name])
        return {"epoch_s": best / epochs, "step_ms": 1e3 * best / (epochs * steps), "final_loss": losses[name],
                "runs_s": samples[name]}

    ref = summary("torch") if torch_side else None
    ours = {b: summary(f"normlab-{b}") for b in backends}
    return {"images": len(X), "epochs": epochs, "steps_per_epoch": steps, "batch_size": BATCH, "repeats": repeats,
            "threads": {v: os.environ.get(v) for v in THREAD_VARS},
            "torch_threads": torch.get_num_threads() if torch is not None else None,
            "normlab": ours, "torch": ref,
            "ratio": {b: (ours[b]["epoch_s"] / ref["epoch_s"] if ref else None) for b in backends}}


def write_json(path: str, payload: dict) -> None:
    """Write to a temporary file in the same directory, then rename over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".mlp-epoch-", suffix=".json.tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _backends(text: str) -> tuple[str, ...]:
    names = tuple(filter(None, (s.strip() for s in text.split(","))))
    bad = [n for n in names if n not in ("numba", "numpy")]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"--backends takes numba and/or numpy, got {text!r}")
    return names


def _positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="One epoch of the notebook's MLP: normlab vs PyTorch, one thread each.")
    p.add_argument("--epochs", type=_positive, default=1, help="epochs per timed run (default 1)")
    p.add_argument("--quick", action="store_true", help=f"the first {QUICK_IMAGES} images only")
    p.add_argument("--repeats", type=_positive, default=1, help="timed runs per side, best kept (default 1)")
    p.add_argument("--backends", type=_backends, default=("numba", "numpy"),
                   help="normlab backends to time (default numba,numpy)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON (atomically)")
    args = p.parse_args(argv)
    r = measure(args.quick, args.epochs, repeats=args.repeats, backends=args.backends)
    print(f"MLP 784-512-256-10 batch norm, SGD lr {LEARNING_RATE}, batch {BATCH}, float32: {r['images']} images "
          f"({r['steps_per_epoch']} steps/epoch) x {r['epochs']} epoch(s), best of {r['repeats']}, 1 thread")
    t = r["torch"]
    print(f"  {'torch':<14} {t['epoch_s']:8.3f} s/epoch  {t['step_ms']:6.3f} ms/step  final loss {t['final_loss']:.4f}")
    for b, s in r["normlab"].items():
        print(f"  {'normlab ' + b:<14} {s['epoch_s']:8.3f} s/epoch  {s['step_ms']:6.3f} ms/step  "
              f"final loss {s['final_loss']:.4f}  ratio normlab/torch {r['ratio'][b]:.2f}")
    print(f"one thread each: {', '.join(f'{k}={v}' for k, v in r['threads'].items())}, "
          f"torch.get_num_threads()={r['torch_threads']}")
    if args.json:
        write_json(args.json, r)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
