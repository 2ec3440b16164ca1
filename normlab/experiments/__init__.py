"""The course's normalization experiments as named, parameterised recipes.

``base`` defines what a training run is (``RunSpec``), what it produces
(``RunResult``) and how it is executed; ``registry`` maps names to recipes.
"""
from ..lab.runs import RunResult, RunSpec, Section, execute

__all__ = ["RunSpec", "RunResult", "Section", "execute"]
