"""The nndl helper package's ``solver`` (``cs231n.solver`` / ``utils.solver``): the
course's schedule (``normlab.faces.solver``), update rules from ``nndl.optim``."""
from . import optim as _optim
from ..faces.solver import CourseSolver


class Solver(CourseSolver):
    __doc__ = CourseSolver.__doc__
    optim = _optim


__all__ = ["Solver"]
