"""The pitfalls suite: what users of batch norm get wrong most, each a measured experiment.

One module per pitfall, each a recipe (see :mod:`normlab.lab.runs`) with
``SUITE = "pitfalls"`` and, like a paper's recipe, its source
(:class:`~normlab.experiments.papers.verdict.Paper`: the documentation, thread
or paper the belief comes from), its claims with criteria fixed before any run,
and a verdict per claim.
"""
from __future__ import annotations

from . import (batch_size_one, dropout_order, eval_mode, finetune_shift, momentum, norm_position,
               running_variance)

#: The pitfalls suite's recipes, in report order.
PITFALLS = (eval_mode, momentum, running_variance, norm_position, dropout_order, finetune_shift, batch_size_one)
