"""Training: the Solver (``solver``), its checkpoints (``checkpoint``, the file
format; ``solver_state``, what a Solver puts in it) and its option and data
checks (``_validate``). ``normlab.solver`` is the course's import path."""
