.PHONY: setup run test bench
setup:
	./scripts/setup

# The main job: the gradient-check table of every layer and net.
run: setup
	.venv/bin/normlab gradcheck

# The full test suite; warnings about numerics are errors.
test: setup
	.venv/bin/python -m pytest -n 2 -W error::RuntimeWarning

bench: setup
	.venv/bin/python benchmarks/run.py
