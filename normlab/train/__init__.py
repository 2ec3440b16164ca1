"""Training internals: checkpoints of a Solver."""
