"""Tests of the papers suite's recipes (normlab.experiments.papers)."""
