"""``cs231n.classifiers`` (2017): ``fc_net`` and ``cnn``."""
