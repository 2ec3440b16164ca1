"""The papers suite: landmark normalization results, each beside the paper's own numbers.

One module per paper, each a recipe (see :mod:`normlab.lab.runs`) with
``SUITE = "papers"``, its :class:`~normlab.experiments.papers.verdict.Paper`
and :class:`~normlab.experiments.papers.verdict.Claim` list (criteria fixed
before any run), and an ``analyze`` that returns a Section whose ``paper``
field holds the paper-vs-ours table with the verdicts.

- ``ioffe_szegedy_2015``: batch norm in a deep sigmoid net (Figure 1, section 3.3).
- ``santurkar_2018``: noisy BN, internal covariate shift, the loss landscape.
- ``wu_he_2018``: group norm against BN, LN and IN across batch sizes and group numbers.
- ``ba_2016``: layer norm against batch norm at batch 128 and 4, and in a conv net.
"""
from __future__ import annotations

from . import ba_2016, ioffe_szegedy_2015, santurkar_2018, wu_he_2018

#: The papers suite's recipes, in report order.
PAPERS = (ioffe_szegedy_2015, santurkar_2018, wu_he_2018, ba_2016)
