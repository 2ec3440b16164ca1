"""normlab: a laboratory for normalization layers in deep networks, on NumPy.

Course-compatible modules: ``normlab.layers``, ``normlab.layer_utils``,
``normlab.models``, ``normlab.optim``, ``normlab.solver``, ``normlab.gradient_check``.
"""
__version__ = "0.1.0"
