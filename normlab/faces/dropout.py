"""Dropout whose ``p`` is the probability of DROPPING a unit: CS231n 2017 and
UCLA nndl. normlab's ``dropout_forward`` (CS231n 2018+) takes the keep
probability; these take the drop probability and build the mask the way each
course's solved notebooks do, then share normlab's arithmetic
(``inverted_dropout``) and backward.

Both draw ``u = np.random.rand(*x.shape)`` after ``np.random.seed(seed)`` when
``dropout_param`` has a seed (the course's template), else from the global
generator, and scale kept units by ``1 / (1 - p)`` (inverted dropout, test
mode is the identity and draws nothing). They differ in the comparison, and
the course numbers depend on it:

* CS231n 2017 keeps a unit where ``u >= p`` (dropped where ``u < p``, as the
  docstring "we drop each neuron output with probability p" reads);
* UCLA nndl keeps a unit where ``u < 1 - p``: its notebooks' stored dropout
  gradient-check losses (2.3051948273987857, 2.29898614757146,
  2.302437587710995 for p = 0, 0.25, 0.5) need exactly this mask.
"""
from __future__ import annotations

import numpy as np

from ..nn.basic import DropoutCache, dropout_args, dropout_backward, dropout_uniforms, inverted_dropout

__all__ = ["drop_dropout_forward", "dropout_backward", "probability", "KEEP_RULES"]

_KEYS = {"mode", "p", "seed"}

#: How each course turns the uniforms u and the drop probability p into the keep mask.
KEEP_RULES = {
    "cs231n_2017": lambda u, p: u >= p,
    "nndl": lambda u, p: u < 1 - p,
}


def drop_dropout_forward(x, dropout_param, rule: str):
    """Inverted dropout with ``dropout_param['p']`` the DROP probability in [0, 1).

    ``rule`` names the course's mask (see ``KEEP_RULES``). Returns
    ``(out, DropoutCache)``; ``dropout_backward`` takes the cache.
    """
    x, mode, p = dropout_args(x, dropout_param, _KEYS)
    p = probability(p, "dropout_param['p']", "drop")
    if mode == "test":
        return x, DropoutCache(None, mode)
    keep = KEEP_RULES[rule](dropout_uniforms(x.shape, dropout_param), p)
    return inverted_dropout(x, keep, 1 - p)


def probability(value, name: str, kind: str) -> float:
    """``value`` as a float: a DROP probability in [0, 1) (0: no dropout) or a KEEP
    probability in (0, 1] (1: no dropout), as ``kind`` says; else ValueError naming both."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok:
        ok = 0.0 <= float(value) < 1.0 if kind == "drop" else 0.0 < float(value) <= 1.0
    if not ok:
        meaning = ("DROPPING a unit in this course (0: no dropout), in [0, 1)" if kind == "drop" else
                   "KEEPING a unit in this course (1: no dropout), in (0, 1]")
        raise ValueError(f"{name} is the probability of {meaning}, got {value!r}")
    return float(value)
