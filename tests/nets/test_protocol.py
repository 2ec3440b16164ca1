"""The model protocol, the architecture description, the normalization table and the conv net's
scores(X, mode): both nets and the torch engine implement the protocol fully."""
import dataclasses
import inspect

import numpy as np
import pytest

from normlab.nets import Architecture, Model
from normlab.nets.norms import NORMALIZATIONS, lookup
from normlab.models import FullyConnectedNet, ThreeLayerConvNet

CONV = dict(input_dim=(2, 6, 6), num_filters=4, filter_size=3, hidden_dim=5, num_classes=3, dtype=np.float64,
            weight_scale=0.2, rng_seed=0)


def _nets():
    yield FullyConnectedNet([6, 5], input_dim=4, num_classes=3, normalization="batchnorm", dropout_keep_ratio=0.7,
                            rng_seed=0)
    for norm in (None, "batchnorm", "groupnorm"):
        yield ThreeLayerConvNet(**CONV, normalization=norm, num_groups=2)


def _check_protocol(model):
    assert isinstance(model, Model)
    for name in ("loss", "scores", "state_arrays", "load_state_arrays", "architecture"):
        want = inspect.signature(getattr(Model, name))
        got = inspect.signature(getattr(type(model), name))
        assert list(got.parameters) == list(want.parameters), name
        assert [p.default for p in got.parameters.values()] == [p.default for p in want.parameters.values()], name
    assert isinstance(model.num_classes, int) and isinstance(model.reg, float) and isinstance(model.dtype, np.dtype)
    assert isinstance(model.architecture(), Architecture)


@pytest.mark.parametrize("model", list(_nets()), ids=lambda m: f"{type(m).__name__}-{m.normalization}")
def test_nets_implement_the_model_protocol(model):
    _check_protocol(model)


def test_torch_model_implements_the_model_protocol():
    pytest.importorskip("torch")
    from normlab.engines.pytorch import TorchModel
    for model in _nets():
        tm = TorchModel(model)
        _check_protocol(tm)
        assert tm.num_classes == model.num_classes
        assert tm.architecture() == model.architecture()


def test_protocol_refuses_an_incomplete_model():
    class Half:
        params, num_classes, reg, dtype, rng = {}, 3, 0.0, np.dtype(np.float64), None

        def loss(self, X, y=None): ...
    assert not isinstance(Half(), Model)


def test_architecture_describes_the_nets():
    fc = FullyConnectedNet([6, 5], input_dim=4, num_classes=3, normalization="batchnorm", bias_before_norm=False,
                           norm_param={"convention": "torch", "eps": 1e-3}, dropout_keep_ratio=0.7, seed=3)
    a = fc.architecture()
    assert (a.kind, a.input_dim, a.hidden_dims, a.num_classes, a.num_layers) == ("fc", (4,), (6, 5), 3, 3)
    assert a.biases == (False, False, True) and a.dtype == np.float32
    assert (a.norm.eps, a.norm.momentum, a.norm.convention, a.norm.groups) == (1e-3, 0.1, "torch", None)
    assert (a.dropout.keep, a.dropout.source, a.dropout.seed, a.dropout.masks) == (0.7, "seed", 3, "normlab")
    assert FullyConnectedNet([6], input_dim=4, dropout_keep_ratio=0.5, rng_seed=1).architecture().dropout.source == "rng"
    assert FullyConnectedNet([6], input_dim=4).architecture().dropout is None
    c = ThreeLayerConvNet(**CONV, normalization="groupnorm", num_groups=2).architecture()
    assert (c.kind, c.input_dim, c.hidden_dims, c.num_layers, c.norm.groups) == ("cnn", (2, 6, 6), (5,), 3, 2)
    assert (c.conv.num_filters, c.conv.filter_size, c.conv.pad, c.conv.pool) == (4, 3, 1, 2)
    from normlab.nndl.fc_net import FullyConnectedNet as Nndl
    d = Nndl([6], input_dim=4, dropout=0.4).architecture().dropout
    assert d.masks == "nndl" and d.keep == pytest.approx(0.6)
    with pytest.raises(ValueError, match="biases"):
        dataclasses.replace(a, biases=(True,))


def test_normalization_table():
    for net in (FullyConnectedNet, ThreeLayerConvNet):
        for name in net.normalizations:
            assert name is None or name in NORMALIZATIONS
    assert all(NORMALIZATIONS[n].spatial is not None for n in ThreeLayerConvNet.normalizations if n)
    assert [n for n, e in NORMALIZATIONS.items() if e.running_stats] == [
        "batchnorm", "noisy-batchnorm", "batchrenorm", "ghost-batchnorm"]
    assert NORMALIZATIONS["groupnorm"].flat is NORMALIZATIONS["layernorm"].flat
    with pytest.raises(ValueError, match=r"unknown normalization 'x'; expected one of None, 'batchnorm'"):
        lookup("x", FullyConnectedNet.normalizations)
    with pytest.raises(ValueError, match=r"unknown norm_param keys \['momentum'\] for layernorm"):
        FullyConnectedNet([6], input_dim=4, normalization="layernorm", norm_param={"momentum": 0.5})
    with pytest.raises(ValueError, match="convention"):
        FullyConnectedNet([6], input_dim=4, normalization="batchnorm", norm_param={"convention": "keras"})


def test_torch_norm_modules_cover_the_table():
    from normlab.engines.pytorch import NUMPY_ONLY_NORMS, TORCH_NORMS
    kinds = {layer.kind for n, e in NORMALIZATIONS.items() if n not in NUMPY_ONLY_NORMS
             for layer in (e.flat, e.spatial) if layer is not None}
    assert kinds == set(TORCH_NORMS)


@pytest.mark.parametrize("norm", [None, "batchnorm", "groupnorm"])
def test_conv_scores_train_mode_is_the_training_forward(norm):
    """scores(X, 'train') = the forward of loss(X, y): same scores, running statistics moved exactly as a
    training step moves them, parameters untouched; scores(X, 'test') = loss(X) and changes nothing."""
    r = np.random.default_rng(3)
    X, y = r.standard_normal((6, 2, 6, 6)), r.integers(3, size=6)
    a = ThreeLayerConvNet(**CONV, normalization=norm, num_groups=2)
    b = ThreeLayerConvNet(**CONV, normalization=norm, num_groups=2)
    params = {k: v.copy() for k, v in a.params.items()}
    train = a.scores(X, "train")
    captured = {}
    loss_layer = b.loss_layer
    b.loss_layer = lambda s, yy: (captured.setdefault("s", s.copy()), loss_layer(s, yy))[1]
    b.loss(X, y)
    np.testing.assert_array_equal(train, captured["s"])
    sa, sb = a.state_arrays(), b.state_arrays()
    assert set(sa) == set(sb) == ({"running_mean1", "running_var1", "running_mean2", "running_var2"}
                                  if norm == "batchnorm" else set())
    assert all(np.array_equal(sa[k], sb[k]) for k in sa)
    assert all(np.array_equal(a.params[k], params[k]) for k in params)
    test = a.scores(X, "test")
    np.testing.assert_array_equal(test, a.loss(X))
    assert all(np.array_equal(v, sa[k]) for k, v in a.state_arrays().items())
    if norm == "batchnorm":
        assert not np.allclose(test, train)
    with pytest.raises(ValueError, match="unknown mode 'eval'"):
        a.scores(X, "eval")
