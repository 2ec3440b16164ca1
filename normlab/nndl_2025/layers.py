"""``nndl.layers`` as in the 2025 template: ``normlab.nndl.layers`` with ``dropout_forward``
taking the KEEP probability (normlab's own: kept where ``np.random.rand(...) < p``, scaled by 1/p)."""
from ..nndl.layers import *  # noqa: F401,F403
from ..nndl.layers import __all__  # noqa: F401
from ..nn.basic import dropout_forward  # noqa: F401,F811  (after the star import: this one wins)
