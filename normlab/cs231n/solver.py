"""``cs231n.solver``: the course's ``Solver`` schedule (see ``normlab.faces.solver``)."""
from . import optim as _optim
from ..faces.solver import CourseSolver


class Solver(CourseSolver):
    __doc__ = CourseSolver.__doc__
    optim = _optim


__all__ = ["Solver"]
