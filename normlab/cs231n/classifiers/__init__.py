"""``cs231n.classifiers``: ``fc_net`` and ``cnn``."""
