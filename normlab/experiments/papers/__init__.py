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
- ``ioffe_2017``: batch renormalization at micro-batches and with non-i.i.d. batches.
- ``hoffer_2017``: ghost batch norm for large batches; Summers & Dinneen's inference example weighing.
- ``bjorck_2018``: BN's benefit through larger learning rates; gradients at initialization.
- ``depth_2020``: deep residual MLPs without normalization: SkipInit (De & Smith 2020), Fixup (Zhang et al. 2019).
- ``wu_johnson_2021``: EMA vs PreciseBN, normalization batch size, statistics under a shift.
"""
from __future__ import annotations

from . import (ba_2016, bjorck_2018, depth_2020, hoffer_2017, ioffe_2017, ioffe_szegedy_2015, santurkar_2018,
               wu_he_2018, wu_johnson_2021)

#: The papers suite's recipes, in report order: issue 13's four, then issue 14's.
PAPERS = (ioffe_szegedy_2015, santurkar_2018, wu_he_2018, ba_2016, ioffe_2017, hoffer_2017, bjorck_2018, depth_2020,
          wu_johnson_2021)
