"""CS231n assignment 2 as taught in 2017: rename ``cs231n.`` to ``normlab.cs231n_2017.``.

That version's keywords and conventions, on normlab's layers:

- ``layers.dropout_forward``: ``dropout_param['p']`` is the probability of
  DROPPING a unit; a unit is kept where ``np.random.rand(...) >= p`` and scaled
  by ``1 / (1 - p)`` (``normlab.faces.dropout``);
- ``classifiers.fc_net.FullyConnectedNet(..., dropout=0, use_batchnorm=False, ...)``
  with ``dropout`` the drop probability (0: no dropout), and ``TwoLayerNet``;
- ``optim.adam`` starts its step count at ``t = 1`` when the config has no state.

Every other name is ``normlab.cs231n``'s.
"""
