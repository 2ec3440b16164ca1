"""CS231n assignment 2 as taught 2018-2020: rename ``cs231n.`` to ``normlab.cs231n_2019.``.

The same course as ``normlab.cs231n`` with that version's keywords:
``FullyConnectedNet(..., dropout=1, normalization=None, ...)`` where ``dropout``
is the KEEP probability (1: no dropout), and ``classifiers.fc_net.TwoLayerNet``.
Every other module is ``normlab.cs231n``'s.
"""
