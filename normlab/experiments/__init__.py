"""The course's normalization experiments as named, parameterised recipes.

``normlab.lab.runs`` defines what a training run is (``RunSpec``), what it
produces (``RunResult``) and how a recipe receives its runs (``Runs``);
``normlab.lab.execute`` runs one; ``registry`` maps names to recipes.
"""
from ..lab.execute import execute
from ..lab.runs import RunResult, Runs, RunSpec, Section

__all__ = ["RunSpec", "RunResult", "Runs", "Section", "execute"]
