"""``cs231n.solver`` as in 2017: the course's schedule, update rules from 2017's ``optim``."""
from . import optim as _optim
from ..faces.solver import CourseSolver


class Solver(CourseSolver):
    __doc__ = CourseSolver.__doc__
    optim = _optim


__all__ = ["Solver"]
