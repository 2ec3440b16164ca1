"""UCLA nndl as taught from 2025: rename ``nndl.`` (and its helper package) to
``normlab.nndl_2025.``.

The same course as ``normlab.nndl`` except that dropout's ``p`` and
``FullyConnectedNet(dropout=...)`` are the probability of KEEPING a unit
(``dropout=1``: none; a unit is kept where ``np.random.rand(...) < p``), as in
the 2025-2026 template. ``use_batchnorm=`` and every other name are nndl's.
"""
