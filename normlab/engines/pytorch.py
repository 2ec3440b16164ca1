"""The PyTorch engine: normlab's nets built from ``torch.nn``, behind the normlab model protocol.

``TorchModel(model)`` takes a normlab ``FullyConnectedNet`` or
``ThreeLayerConvNet`` and builds the same architecture from ``torch.nn``
(Linear, BatchNorm1d/2d, LayerNorm, GroupNorm, Conv2d, MaxPool2d, ReLU,
dropout) with the model's parameters COPIED in. It then behaves like a normlab
model (``params``, ``loss(X, y=None)``, ``scores(X, mode)``,
``state_arrays()``, ``load_state_arrays()``, ``rng``), so the unchanged
``Solver`` trains it: the same minibatch order, accuracy checks, update rule
(normlab's ``optim``, applied to the arrays), schedule, divergence handling and
best snapshot as the NumPy engine, by construction. Only the forward and
backward passes differ: ``torch.nn`` modules and autograd.

Parameters stay NumPy arrays in ``params`` (normlab's shapes: W is (in, out));
each call wraps them without copying (``torch.from_numpy``) and passes them to
the modules through ``torch.func.functional_call``. A Linear weight is the
transposed view ``W.T`` (torch stores (out, in)).

Conventions mapped explicitly:

- Batch-norm momentum: PyTorch's ``momentum`` weights the NEW batch. A normlab
  layer's ``BatchNormConfig.new_weight`` is that weight in either convention
  (course 0.9 on the old value -> 0.1), so the running MEAN follows the same
  recursion.
- Batch-norm running statistics START as the NumPy model's: copied from its
  ``bn_params`` when present, else its convention's initial values (course:
  mean 0, variance 0; 'torch': mean 0, variance 1, PyTorch's own start). Left
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

torch is optional (``pip install 'normlab[torch]'``): importing this module
does not import it; ``require_torch()`` does, with a one-line error otherwise.
"""
from __future__ import annotations

import copy

import numpy as np

from ..nn.basic import dropout_forward, dropout_uniforms

__all__ = ["TorchModel", "require_torch", "torch_available", "TORCH_MISSING", "ENGINES"]

ENGINES = ("numpy", "torch")
TORCH_MISSING = "PyTorch is not installed; the torch engine needs it: pip install 'normlab[torch]'"


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


def _modules(torch):
    """The nn.Module classes, defined once torch is importable."""
    nn = torch.nn

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
        """{Linear - [BatchNorm1d | LayerNorm] - ReLU - [dropout]} x (L-1) - Linear."""

        def __init__(self, model, owner, momentum):
            super().__init__()
            P = model.params
            L = model.num_layers
            self.blocks = nn.ModuleList()
            for i in range(1, L):
                d_in, d_out = P[f"W{i}"].shape
                block = nn.Sequential()
                block.append(nn.Linear(d_in, d_out, bias=f"b{i}" in P))
                if model.normalization == "batchnorm":
                    cfg = _bn_config(model.bn_params[i - 1])
                    block.append(nn.BatchNorm1d(d_out, eps=cfg.eps,
                                                momentum=cfg.new_weight if momentum is None else momentum))
                elif model.normalization == "layernorm":
                    block.append(nn.LayerNorm(d_out, eps=model.bn_params[i - 1].get("eps", 1e-5)))
                block.append(nn.ReLU())
                if model.use_dropout:
                    block.append(NumpyMaskDropout(model.dropout_param["p"], owner,
                                                  model.dropout_param.get("seed")))
                self.blocks.append(block)
            d_in, d_out = P[f"W{L}"].shape
            self.out = nn.Linear(d_in, d_out)

        def forward(self, x):
            for block in self.blocks:
                x = block(x)
            return self.out(x)

        def param_paths(self, model):
            """normlab name -> (module parameter path, transpose?)."""
            paths = {}
            for i in range(1, model.num_layers):
                paths[f"W{i}"] = (f"blocks.{i - 1}.0.weight", True)
                paths[f"b{i}"] = (f"blocks.{i - 1}.0.bias", False)
                paths[f"gamma{i}"] = (f"blocks.{i - 1}.1.weight", False)
                paths[f"beta{i}"] = (f"blocks.{i - 1}.1.bias", False)
            L = model.num_layers
            paths[f"W{L}"], paths[f"b{L}"] = ("out.weight", True), ("out.bias", False)
            return {k: v for k, v in paths.items() if k in model.params}

    class ConvNet(nn.Module):
        """Conv2d - [BatchNorm2d | GroupNorm] - ReLU - MaxPool2d(2) - Linear - [BatchNorm1d | LayerNorm] - ReLU - Linear."""

        def __init__(self, model, owner, momentum):
            super().__init__()
            P = model.params
            F, C, k, _ = P["W1"].shape
            self.conv = nn.Conv2d(C, F, k, stride=1, padding=(k - 1) // 2)
            self.fc = nn.Linear(*P["W2"].shape)
            self.out = nn.Linear(*P["W3"].shape)
            self.norm1 = self.norm2 = None
            if model.normalization == "batchnorm":
                c1, c2 = (_bn_config(p) for p in model.bn_params)
                self.norm1 = nn.BatchNorm2d(F, eps=c1.eps, momentum=c1.new_weight if momentum is None else momentum)
                self.norm2 = nn.BatchNorm1d(P["W2"].shape[1], eps=c2.eps,
                                            momentum=c2.new_weight if momentum is None else momentum)
            elif model.normalization == "groupnorm":
                self.norm1 = nn.GroupNorm(model.num_groups, F, eps=model.bn_params[0].get("eps", 1e-5))
                self.norm2 = nn.LayerNorm(P["W2"].shape[1], eps=model.bn_params[1].get("eps", 1e-5))
            self.pool = nn.MaxPool2d(2, 2)

        def forward(self, x):                     # x: (N, C, H, W)
            h = self.conv(x)                      # (N, F, H, W)
            if self.norm1 is not None:
                h = self.norm1(h)
            h = self.pool(torch.relu(h))          # (N, F, H/2, W/2)
            h = self.fc(h.flatten(1))             # (N, hidden): C-order flatten, as normlab's affine
            if self.norm2 is not None:
                h = self.norm2(h)
            return self.out(torch.relu(h))

        def param_paths(self, model):
            paths = {"W1": ("conv.weight", False), "b1": ("conv.bias", False),
                     "W2": ("fc.weight", True), "b2": ("fc.bias", False),
                     "W3": ("out.weight", True), "b3": ("out.bias", False),
                     "gamma1": ("norm1.weight", False), "beta1": ("norm1.bias", False),
                     "gamma2": ("norm2.weight", False), "beta2": ("norm2.bias", False)}
            return {k: v for k, v in paths.items() if k in model.params}

    return FCNet, ConvNet


def _bn_config(bn_param: dict):
    from ..nn.norm.batchnorm import BatchNormConfig
    return BatchNormConfig(**{k: bn_param[k] for k in ("eps", "momentum", "convention") if k in bn_param})


class TorchModel:
    """A normlab model's net in ``torch.nn``, following the normlab model protocol.

    Inputs:
    - model: a ``FullyConnectedNet`` or ``ThreeLayerConvNet``; its parameters
      are copied (cast to ``dtype``), its dropout generator is copied (same
      state, so both engines draw the same masks from here on). The model
      itself is not changed.
    - dtype: np.float32 or np.float64; default the model's.
    - bn_momentum: override PyTorch's batch-norm momentum (None: the mapped
      ``new_weight`` of each layer). Only for tests that must see a
      mismatched convention fail.

    Running statistics are PyTorch's buffers; ``state_arrays()`` names them as
    normlab does (``running_mean{i}``, ``running_var{i}`` per batch-norm layer).
    """

    def __init__(self, model, dtype=None, bn_momentum=None):
        self.torch = torch = require_torch()
        FCNet, ConvNet = _modules(torch)
        from ..nets.cnn import ThreeLayerConvNet
        from ..nets.fc import FullyConnectedNet
        if isinstance(model, FullyConnectedNet):
            net_cls = FCNet
        elif isinstance(model, ThreeLayerConvNet):
            net_cls = ConvNet
        else:
            raise TypeError(f"the torch engine builds FullyConnectedNet and ThreeLayerConvNet, "
                            f"got {type(model).__name__}")
        if getattr(model, "use_dropout", False) and model.dropout_layer is not dropout_forward:
            raise ValueError(f"the torch engine draws dropout masks as normlab's dropout_forward (keep "
                             f"probability p); {type(model).__module__}.{type(model).__name__} uses its "
                             f"course's own masks; build the net with normlab.models.FullyConnectedNet")
        self.dtype = np.dtype(model.dtype if dtype is None else dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be np.float32 or np.float64, got {dtype!r}")
        self.normalization = model.normalization
        self.reg = float(model.reg)
        self.rng = copy.deepcopy(getattr(model, "rng", None))
        self.params = {k: np.array(v, dtype=self.dtype, copy=True) for k, v in model.params.items()}
        tdtype = torch.float64 if self.dtype == np.float64 else torch.float32
        self.net = net_cls(model, self, bn_momentum).to(tdtype)
        self._paths = self.net.param_paths(model)
        missing = set(self.params) - set(self._paths)
        assert not missing, f"parameters without a torch counterpart: {sorted(missing)}"
        self._bns = [m for m in self.net.modules()
                     if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))]
        self._bn_index = [i for i, p in enumerate(getattr(model, "bn_params", []), start=1)
                          if model.normalization == "batchnorm"]
        self._initial_state = self._initial_running_stats(model)
        self.load_state_arrays(self._initial_state)
        self._weights = [k for k in self.params if k.startswith("W")]
        self._is_conv = net_cls is ConvNet
        self._input_dim = getattr(model, "input_dim", None)

    def _initial_running_stats(self, model) -> dict[str, np.ndarray]:
        """The NumPy model's running statistics, or its convention's initial ones where it has none yet."""
        from ..nn.norm.batchnorm import RunningStats
        state = model.state_arrays() if hasattr(model, "state_arrays") else {}
        for i, bn in zip(self._bn_index, self._bns):
            init = RunningStats.initial(bn.num_features, self.dtype, _bn_config(model.bn_params[i - 1]))
            state.setdefault(f"running_mean{i}", init.mean)
            state.setdefault(f"running_var{i}", init.var)
        return {k: np.asarray(v, dtype=self.dtype) for k, v in state.items()}

    # --- the normlab model protocol -----------------------------------------------------------
    def _input(self, X):
        X = np.asarray(X).astype(self.dtype, copy=False)
        if self._is_conv and (X.ndim != 4 or tuple(X.shape[1:]) != tuple(self._input_dim)):
            raise ValueError(f"input X has shape {X.shape}, the net expects (N, *{tuple(self._input_dim)})")
        if not self._is_conv:
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
        for i, bn in zip(self._bn_index, self._bns):
            out[f"running_mean{i}"] = bn.running_mean.numpy().copy()
            out[f"running_var{i}"] = bn.running_var.numpy().copy()
        return out

    def load_state_arrays(self, state: dict[str, np.ndarray]) -> None:
        """Replace the running statistics; layers absent from ``state`` restart from the initial ones
        (the NumPy model's at construction, see the module docstring)."""
        with self.torch.no_grad():
            for i, bn in zip(self._bn_index, self._bns):
                src = state if f"running_mean{i}" in state and f"running_var{i}" in state else self._initial_state
                bn.running_mean.copy_(_tensor(self.torch, np.asarray(src[f"running_mean{i}"], dtype=self.dtype)))
                bn.running_var.copy_(_tensor(self.torch, np.asarray(src[f"running_var{i}"], dtype=self.dtype)))
