"""``cs231n.layers`` as in 2018-2020: ``normlab.cs231n.layers``, with ``softmax_loss`` evaluated
in the order of the code that year's template gives (``normlab.nn.losses.softmax_loss_log_probs``)."""
from ..cs231n.layers import *  # noqa: F401,F403
from ..cs231n.layers import __all__  # noqa: F401
from ..nn.losses import softmax_loss_log_probs as softmax_loss  # noqa: F401
