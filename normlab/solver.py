"""The course's ``solver`` module: ``Solver``, normlab's training loop
(implemented in :mod:`normlab.train.solver`, which documents the model
protocol and how it differs from the CS231n Solver)."""
from .train.solver import Solver

__all__ = ["Solver"]
