"""The lab: run specs and results, the store, sweeps, budgets, the run directory, figures and the report."""
