"""``cs231n.classifiers`` (2018-2020): ``fc_net`` and ``cnn``."""
