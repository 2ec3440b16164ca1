.PHONY: setup run test bench bench-reproduce
setup:
	./scripts/setup

# The main job: every course experiment, one report (runs/latest/report.html).
# The previous run directory is kept as runs/previous.
run: setup
	@if [ -d runs/latest ]; then rm -rf runs/previous && mv runs/latest runs/previous; fi
	.venv/bin/normlab reproduce --out runs/latest

# The full test suite, on the Numba backend and on the NumPy reference; warnings
# about numerics are errors.
test: setup
	.venv/bin/python -m pytest -n 2 -W error::RuntimeWarning
	NORMLAB_BACKEND=numpy .venv/bin/python -m pytest -n 2 -W error::RuntimeWarning

bench: setup
	.venv/bin/python benchmarks/run.py

# Wall time of `normlab reproduce` (full settings) with 1 and 2 worker processes.
bench-reproduce: setup
	.venv/bin/python benchmarks/reproduce.py
