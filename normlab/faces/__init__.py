"""What the course faces translate, in one place.

A face (``normlab.cs231n``, ``normlab.cs231n_2019``, ``normlab.cs231n_2017``,
``normlab.nndl``, ``normlab.nndl_2025``) mirrors one course's package module
for module, so porting a notebook is a rename of its imports. The faces hold
no numerics of their own: their modules re-export normlab's layers and wrap
them with the course's semantics, which live here:

- ``dropout``: dropout whose ``p`` is the DROP probability, with each course's mask;
- ``nets``: the courses' model signatures (``dropout=``, ``use_batchnorm=``,
  ``TwoLayerNet``) as keyword adapters over normlab's nets;
- ``optim``: optimizer state under other names (nndl's ``a``, ``v``), and
  2017's Adam step count starting at 1;
- ``solver``: the course's Solver schedule (global-RNG minibatches with
  replacement, accuracy after the first iteration).
"""
