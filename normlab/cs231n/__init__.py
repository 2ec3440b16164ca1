"""CS231n assignment 2 (2021-22 and later), module for module: port a notebook by
renaming ``cs231n.`` to ``normlab.cs231n.``.

``layers``, ``layer_utils``, ``fast_layers``, ``classifiers.fc_net``,
``classifiers.cnn``, ``optim``, ``solver``, ``gradient_check`` and
``data_utils`` hold the course's names with its semantics: dropout's ``p`` and
``FullyConnectedNet(dropout_keep_ratio=...)`` are keep probabilities,
``normalization=`` picks batch or layer norm, ``seed=`` fixes the dropout
masks and the weights come from the global ``np.random``, and the ``Solver``
samples minibatches from the global generator as the course's does. Older
years: ``normlab.cs231n_2019`` (2018-2020) and ``normlab.cs231n_2017``.
"""
