"""UCLA ECE C147/C247 (and ECE 239AS) "nndl" code, module for module: port a notebook
by renaming ``nndl.`` to ``normlab.nndl.``, and its helper package (``cs231n.`` or,
in 2022-2024, ``utils.``) to ``normlab.nndl.`` as well.

The course's semantics (its 2018-2024 template), translated at the edge onto
normlab's core:

- dropout's ``p`` and ``FullyConnectedNet(dropout=...)`` are the probability of
  DROPPING a unit (0: none); a unit is kept where ``np.random.rand(...) < 1 - p``;
- ``FullyConnectedNet(..., use_batchnorm=...)``, ``ThreeLayerConvNet(..., use_batchnorm=...)``;
- ``optim.sgd_nesterov_momentum``; RMSProp keeps its average under ``'a'``,
  Adam its moments under ``'v'`` (first) and ``'a'`` (second) and ``'t'``;
- ``layer_tests``: the HW4 checks of the copied layers.

The 2025-2026 template, where dropout's ``p`` is the KEEP probability, is
``normlab.nndl_2025``.
"""
