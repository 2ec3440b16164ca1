"""The PyTorch engine: normlab's nets built from ``torch.nn``, behind the normlab model protocol.

``TorchModel(model)`` takes a normlab net (``FullyConnectedNet``,
``ThreeLayerConvNet``: anything with ``architecture()``) and builds the net its
``Architecture`` describes from ``torch.nn`` (Linear, BatchNorm1d/2d,
LayerNorm, GroupNorm, Conv2d, MaxPool2d, ReLU or Sigmoid, dropout) with the
model's parameters COPIED in. It then implements the normlab model protocol
(``normlab.nets.Model``: ``params``, ``loss(X, y=None)``, ``scores(X, mode)``,
``state_arrays()``, ``load_state_arrays()``, ``rng``, ``num_classes``, ...), so
the unchanged ``Solver`` trains it: the same minibatch order, accuracy checks,
update rule (normlab's ``optim``, applied to the arrays), schedule, divergence
handling and best snapshot as the NumPy engine, by construction. Only the
forward and backward passes differ: ``torch.nn`` modules and autograd.

Modules are named after normlab's parameters: ``linear{i}`` is the i-th
linear layer (the conv net's ``linear1`` is its Conv2d), ``norm{i}`` the
normalization after it, so ``W{i}``/``b{i}`` are ``linear{i}.weight``/``.bias``
and ``gamma{i}``/``beta{i}`` are ``norm{i}.weight``/``.bias``; the running
statistics ``running_mean{i}``/``running_var{i}`` are ``norm{i}``'s buffers.
Which ``torch.nn`` module a normalization layer is comes from ``TORCH_NORMS``,
keyed by the layer kinds of the normalization table (``normlab.nets.norms``).

Parameters stay NumPy arrays in ``params`` (normlab's shapes: W is (in, out));
each call wraps them without copying (``torch.from_numpy``) and passes them to
the modules through ``torch.func.functional_call``. A Linear weight is the
transposed view ``W.T`` (torch stores (out, in)).

Conventions mapped explicitly:

- Batch-norm momentum: PyTorch's ``momentum`` weights the NEW batch. A normlab
  layer's ``BatchNormConfig.new_weight`` is that weight in either convention
  (course 0.9 on the old value -> 0.1), so the running MEAN follows the same
  recursion.
- Batch-norm running statistics START as the NumPy model's: its
  ``state_arrays()`` when it has them, else its convention's initial values
  (course: mean 0, variance 0; 'torch': mean 0, variance 1, PyTorch's own start). Left
  at PyTorch's variance 1, a course-convention net's eval-mode outputs differ
  between the engines for the first few hundred steps: after 20 steps
  (the first epoch's accuracy check of bn-vs-baseline) 0.9**20 = 12% of that 1
  remains, which dwarfs the ~1e-3 variance of a hidden unit at weight scale 2e-2.
- The running VARIANCE is updated as PyTorch does: with the unbiased batch
  variance (m / (m - 1) times the biased one, m values per channel). That
  equals normlab's ``convention='torch'`` exactly; the course convention uses
  the biased one, so its running variances are m / (m - 1) smaller in
  the long run (2% at batch 50) and its eval-mode outputs differ by about half
  that. ``normlab crosscheck`` builds its NumPy nets with
  ``norm_param={'convention': 'torch'}``.
- eps: the normlab layer's eps (default 1e-5, PyTorch's default too).
- Dropout: normlab's inverted dropout with masks drawn exactly as
  ``dropout_forward`` draws them (``u < p``, u from the course's ``seed`` when
  the model has one, else from ``model.rng``), so both engines drop the same
  units; with neither, ``torch.nn.Dropout``.
- L2: ``0.5 * reg * sum(W**2)`` on the weights only, added to the loss; autograd
  gives ``reg * W``.

Not built here (ValueError naming the setting): the normalizations of
``NUMPY_ONLY_NORMS`` ('noisy-batchnorm': its noise is drawn by the NumPy
layer) and ``batch_variance='unbiased'`` (torch.nn's batch norm normalizes
with the biased variance).

torch is optional (``pip install 'normlab[torch]'``): importing this module
does not import it; ``require_torch()`` does, with a one-line error otherwise.
"""
from __future__ import annotations

import copy
import dataclasses
import re

import numpy as np

from ..nets.norms import NORMALIZATIONS

__all__ = ["TorchModel", "require_torch", "torch_available", "TORCH_MISSING", "TORCH_NORMS", "TORCH_ACTIVATIONS",
           "NUMPY_ONLY_NORMS"]

TORCH_MISSING = "PyTorch is not installed; the torch engine needs it: pip install 'normlab[torch]'"

#: The torch.nn module of each activation of ``normlab.nets.architecture.ACTIVATIONS``.
TORCH_ACTIVATIONS = {"relu": "ReLU", "sigmoid": "Sigmoid"}

#: The torch.nn module of each layer kind of the normalization table, as
#: ``(class name, keyword arguments from (NormConfig, batch-norm momentum))``.
TORCH_NORMS = {
    "batchnorm": ("BatchNorm1d", lambda cfg, momentum: {"eps": cfg.eps, "momentum": momentum}),
    "spatial_batchnorm": ("BatchNorm2d", lambda cfg, momentum: {"eps": cfg.eps, "momentum": momentum}),
    "layernorm": ("LayerNorm", lambda cfg, momentum: {"eps": cfg.eps}),
    "groupnorm": ("GroupNorm", lambda cfg, momentum: {"eps": cfg.eps}),
}

#: The normalizations of the table this engine does not build, and why.
NUMPY_ONLY_NORMS = {"noisy-batchnorm": "its noise is drawn by the NumPy layer",
                    "batchrenorm": "torch.nn has no batch renormalization",
                    "ghost-batchnorm": "torch.nn has no ghost batch norm"}

# normlab parameter name -> (module prefix, module attribute): W3 -> linear3.weight
_PARAM_PATHS = {"W": ("linear", "weight"), "b": ("linear", "bias"), "gamma": ("norm", "weight"),
                "beta": ("norm", "bias")}


def require_torch():
    """The torch module, or ValueError with the install command (the CLI prints it as one line)."""
    try:
        import torch
    except ImportError:
        raise ValueError(TORCH_MISSING) from None
    return torch


def torch_available() -> bool:
    """True when ``import torch`` works (the check imports it: a broken install counts as absent)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _tensor(torch, a: np.ndarray):
    """A tensor sharing ``a``'s memory; read-only arrays are copied (torch needs writable memory)."""
    a = np.asarray(a)
    if not a.flags.writeable:
        a = a.copy()
    return torch.from_numpy(a)


def _norm_module(nn, layer, num_features: int, cfg, momentum):
    """The torch.nn module of a normalization-table layer over ``num_features`` features/channels.

    ``momentum``: PyTorch's batch-norm momentum, None for the config's own (``new_weight``).
    """
    cls_name, kwargs = TORCH_NORMS[layer.kind]
    if momentum is None and cfg.convention is not None:
        momentum = cfg.batchnorm().new_weight
    args = (cfg.groups, num_features) if cls_name == "GroupNorm" else (num_features,)
    return getattr(nn, cls_name)(*args, **kwargs(cfg, momentum))


def _modules(torch):
    """The nn.Module classes, defined once torch is importable."""
    nn = torch.nn
    from ..nn.basic import dropout_uniforms

    class NumpyMaskDropout(nn.Module):
        """Inverted dropout (keep probability p) with masks drawn as normlab's ``dropout_forward`` draws them."""

        def __init__(self, p: float, owner, seed=None):
            super().__init__()
            self.p, self.owner, self.seed = float(p), owner, seed

        def forward(self, x):
            if not self.training:
                return x
            rng = self.owner.rng
            if self.seed is None and rng is None:
                return nn.functional.dropout(x, 1.0 - self.p, training=True)
            source = {"seed": self.seed} if self.seed is not None else {"rng": rng}
            u = dropout_uniforms(tuple(x.shape), source)
            mask = (u < self.p).astype(np.dtype(str(x.dtype).replace("torch.", "")))
            mask /= np.asarray(self.p, dtype=mask.dtype)
            return x * torch.from_numpy(mask)

    class FCNet(nn.Module):
        """{linear{i} - [norm{i}] - activation (ReLU or Sigmoid) - [dropout{i}]} for i < L, then linear{L};
        the norm after the activation and dropout elsewhere as the architecture's ``norm_position`` and
        ``dropout_position`` say (the order of ``FullyConnectedNet._layer_ops``)."""

        def __init__(self, arch, owner, momentum):
            super().__init__()
            norm = NORMALIZATIONS[arch.normalization] if arch.normalization else None
            dims = (*arch.input_dim, *arch.hidden_dims, arch.num_classes)
            self.num_layers = L = arch.num_layers
            self.normalized, self.dropout = norm is not None, arch.dropout is not None
            self.activation = getattr(nn, TORCH_ACTIVATIONS[arch.activation])()
            self.ops = {}
            for i in range(1, L):
                ops = ["norm", "act"] if arch.norm_position == "before" else ["act", "norm"]
                if not norm:
                    ops.remove("norm")
                if arch.dropout and arch.dropout_position == "before_norm":
                    ops.insert(ops.index("norm"), "drop")
                elif arch.dropout and (arch.dropout_position == "after_activation" or i == L - 1):
                    ops.append("drop")
                self.ops[i] = ops
            for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:]), start=1):
                self.add_module(f"linear{i}", nn.Linear(d_in, d_out, bias=arch.biases[i - 1]))
                if i == L:
                    break
                if norm:
                    self.add_module(f"norm{i}", _norm_module(nn, norm.flat, d_out, arch.norm, momentum))
                if "drop" in self.ops[i]:
                    self.add_module(f"dropout{i}", NumpyMaskDropout(arch.dropout.keep, owner, arch.dropout.seed))

        def forward(self, x):                     # x: (N, D)
            for i in range(1, self.num_layers):
                x = getattr(self, f"linear{i}")(x)
                for op in self.ops[i]:
                    x = (self.activation(x) if op == "act" else
                         getattr(self, f"norm{i}" if op == "norm" else f"dropout{i}")(x))
            return getattr(self, f"linear{self.num_layers}")(x)

    class ConvNet(nn.Module):
        """linear1 (Conv2d) - [norm1] - ReLU - MaxPool2d - linear2 - [norm2] - ReLU - linear3."""

        def __init__(self, arch, owner, momentum):
            super().__init__()
            C, H, W = arch.input_dim
            conv, (hidden,) = arch.conv, arch.hidden_dims
            F, p = conv.num_filters, conv.pool
            b1, b2, b3 = arch.biases
            self.linear1 = nn.Conv2d(C, F, conv.filter_size, stride=conv.stride, padding=conv.pad, bias=b1)
            self.linear2 = nn.Linear(F * (H // p) * (W // p), hidden, bias=b2)
            self.linear3 = nn.Linear(hidden, arch.num_classes, bias=b3)
            self.norm1 = self.norm2 = None
            if arch.normalization:
                norm = NORMALIZATIONS[arch.normalization]
                self.norm1 = _norm_module(nn, norm.spatial, F, arch.norm, momentum)
                self.norm2 = _norm_module(nn, norm.flat, hidden, arch.norm, momentum)
            self.pool = nn.MaxPool2d(p, p)

        def forward(self, x):                     # x: (N, C, H, W)
            h = self.linear1(x)                   # (N, F, H, W)
            if self.norm1 is not None:
                h = self.norm1(h)
            h = self.pool(torch.relu(h))          # (N, F, H/2, W/2)
            h = self.linear2(h.flatten(1))        # (N, hidden): C-order flatten, as normlab's affine
            if self.norm2 is not None:
                h = self.norm2(h)
            return self.linear3(torch.relu(h))

    return {"fc": FCNet, "cnn": ConvNet}


class TorchModel:
    """A normlab net in ``torch.nn``, implementing the normlab model protocol (``normlab.nets.Model``).

    Inputs:
    - model: a normlab net (``FullyConnectedNet``, ``ThreeLayerConvNet``); built
      from its ``architecture()``, its parameters copied (cast to ``dtype``),
      its running statistics from ``state_arrays()``, its dropout generator
      ``rng`` copied (same state, so both engines draw the same masks from here
      on). The model itself is not changed.
    - dtype: np.float32 or np.float64; default the model's.
    - bn_momentum: override PyTorch's batch-norm momentum (None: the mapped
      ``new_weight`` of the model's convention). Only for tests that must see a
      mismatched convention fail.

    Running statistics are PyTorch's buffers; ``state_arrays()`` names them as
    normlab does (``running_mean{i}``, ``running_var{i}`` per batch-norm layer i).
    """

    def __init__(self, model, dtype=None, bn_momentum=None):
        self.torch = torch = require_torch()
        if not callable(getattr(model, "architecture", None)):
            raise TypeError(f"the torch engine builds a normlab net from its architecture() "
                            f"(FullyConnectedNet, ThreeLayerConvNet), got {type(model).__name__}")
        arch = model.architecture()
        if arch.dropout is not None and arch.dropout.masks != "normlab":
            raise ValueError(f"the torch engine draws dropout masks as normlab's dropout_forward (keep "
                             f"probability p); {type(model).__module__}.{type(model).__name__} uses its "
                             f"course's own masks; build the net with normlab.models.FullyConnectedNet")
        if arch.normalization in NUMPY_ONLY_NORMS:
            raise ValueError(f"{arch.normalization} runs on the numpy engine only "
                             f"({NUMPY_ONLY_NORMS[arch.normalization]}); train it with engine 'numpy'")
        if arch.norm is not None and arch.norm.batch_variance == "unbiased":
            raise ValueError("batch_variance='unbiased' runs on the numpy engine only (torch.nn's batch norm "
                             "normalizes with the biased variance); use engine 'numpy' or 'biased'")
        self.dtype = np.dtype(arch.dtype if dtype is None else dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be np.float32 or np.float64, got {dtype!r}")
        self._arch = dataclasses.replace(arch, dtype=self.dtype)
        self.normalization = arch.normalization
        self.num_classes = arch.num_classes
        self.reg = float(model.reg)
        self.rng = copy.deepcopy(getattr(model, "rng", None))
        self.params = {k: np.array(v, dtype=self.dtype, copy=True) for k, v in model.params.items()}
        tdtype = torch.float64 if self.dtype == np.float64 else torch.float32
        self.net = _modules(torch)[arch.kind](arch, self, bn_momentum).to(tdtype)
        self._paths = {k: self._path(k) for k in self.params}
        unmatched = {path for path, _ in self._paths.values()} ^ {name for name, _ in self.net.named_parameters()}
        assert not unmatched, f"parameters without a counterpart on the other side: {sorted(unmatched)}"
        running = arch.normalization is not None and NORMALIZATIONS[arch.normalization].running_stats
        self._bns = {i: self.net.get_submodule(f"norm{i}") for i in range(1, arch.num_layers)} if running else {}
        self._initial_state = self._initial_running_stats(model.state_arrays())
        self.load_state_arrays(self._initial_state)
        self._weights = [k for k in self.params if k.startswith("W")]

    def _path(self, name: str) -> tuple[str, bool]:
        """normlab name -> (module parameter path, transpose?): W2 -> ('linear2.weight', True)."""
        m = re.fullmatch(r"(W|b|gamma|beta)(\d+)", name)
        assert m, f"parameter {name!r} does not follow normlab's naming (W1, b1, gamma1, beta1, ...)"
        prefix, attr = _PARAM_PATHS[m[1]]
        module = f"{prefix}{m[2]}"
        return f"{module}.{attr}", isinstance(self.net.get_submodule(module), self.torch.nn.Linear) and m[1] == "W"

    def _initial_running_stats(self, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The NumPy model's running statistics, or its convention's initial ones where it has none yet."""
        from ..nn.norm.batchnorm import RunningStats
        for i, bn in self._bns.items():
            init = RunningStats.initial(bn.num_features, self.dtype, self._arch.norm.batchnorm())
            state.setdefault(f"running_mean{i}", init.mean)
            state.setdefault(f"running_var{i}", init.var)
        return {k: np.asarray(v, dtype=self.dtype) for k, v in state.items()}

    # --- the normlab model protocol -----------------------------------------------------------
    def architecture(self):
        """The architecture this net was built from (in this engine's dtype)."""
        return self._arch

    def _input(self, X):
        X = np.asarray(X).astype(self.dtype, copy=False)
        if self._arch.kind == "cnn":
            if X.ndim != 4 or tuple(X.shape[1:]) != tuple(self._arch.input_dim):
                raise ValueError(f"input X has shape {X.shape}, the net expects (N, *{tuple(self._arch.input_dim)})")
        else:
            X = X.reshape(len(X), -1)
        return _tensor(self.torch, X)

    def _call(self, X, leaves):
        args = {self._paths[k][0]: (t.T if self._paths[k][1] else t) for k, t in leaves.items()}
        return self.torch.func.functional_call(self.net, args, (self._input(X),))

    def scores(self, X, mode="test"):
        """Class scores (N, C) as a NumPy array; ``mode='train'`` uses batch statistics (and,
        as in training, updates the running statistics) and applies dropout."""
        if mode not in ("train", "test"):
            raise ValueError(f"unknown mode {mode!r}; expected 'train' or 'test'")
        torch = self.torch
        self.net.train(mode == "train")
        with torch.no_grad():
            leaves = {k: _tensor(torch, v) for k, v in self.params.items()}
            return self._call(X, leaves).numpy().copy()

    def loss(self, X, y=None):
        """Scores (N, C) when y is None (eval mode); else (loss, grads) in train mode,
        the gradients from autograd, keyed and shaped like ``params``."""
        if y is None:
            return self.scores(X, "test")
        torch = self.torch
        self.net.train(True)
        leaves = {k: _tensor(torch, v).requires_grad_(True) for k, v in self.params.items()}
        scores = self._call(X, leaves)
        loss = torch.nn.functional.cross_entropy(scores, torch.from_numpy(np.asarray(y).astype(np.int64)))
        if self.reg:
            loss = loss + 0.5 * self.reg * sum((leaves[k] ** 2).sum() for k in self._weights)
        names = list(leaves)
        grads = torch.autograd.grad(loss, [leaves[k] for k in names], allow_unused=True)
        out = {k: (np.zeros_like(self.params[k]) if g is None else g.numpy()) for k, g in zip(names, grads)}
        return float(loss.detach()), out

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Copies of the batch-norm running statistics (running_mean{i}, running_var{i})."""
        out = {}
        for i, bn in self._bns.items():
            out[f"running_mean{i}"] = bn.running_mean.numpy().copy()
            out[f"running_var{i}"] = bn.running_var.numpy().copy()
        return out

    def load_state_arrays(self, state: dict[str, np.ndarray]) -> None:
        """Replace the running statistics; layers absent from ``state`` restart from the initial ones
        (the NumPy model's at construction, see the module docstring)."""
        with self.torch.no_grad():
            for i, bn in self._bns.items():
                src = state if f"running_mean{i}" in state and f"running_var{i}" in state else self._initial_state
                bn.running_mean.copy_(_tensor(self.torch, np.asarray(src[f"running_mean{i}"], dtype=self.dtype)))
                bn.running_var.copy_(_tensor(self.torch, np.asarray(src[f"running_var{i}"], dtype=self.dtype)))
