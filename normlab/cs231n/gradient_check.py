"""``cs231n.gradient_check``: central-difference gradients (``normlab.gradient_check``)."""
from ..gradient_check import eval_numerical_gradient, eval_numerical_gradient_array, grad_check_sparse, rel_error

__all__ = ["eval_numerical_gradient", "eval_numerical_gradient_array", "grad_check_sparse", "rel_error"]
