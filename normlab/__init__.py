"""normlab: a laboratory for normalization layers in deep networks, on NumPy.

Course-compatible modules: ``normlab.layers``, ``normlab.layer_utils``,
``normlab.models``, ``normlab.optim``, ``normlab.solver``, ``normlab.gradient_check``
(CS231n 2021-22 semantics, plus normlab's options). Course faces, named after
each course's packages so a notebook ports by renaming its imports:
``normlab.cs231n``, ``normlab.cs231n_2019``, ``normlab.cs231n_2017``,
``normlab.nndl`` and ``normlab.nndl_2025`` (see ``normlab.faces``).
"""
__version__ = "0.1.0"
