# The two commands of the README:
#   make demo   set up .venv/ and run `agentracer demo` (offline: no key, no GPU, no network)
#   make test   set up every test environment and run the whole suite (what CI runs)
.PHONY: setup demo test lint bench

setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/agentracer demo --out demo-out

test: setup
	bash scripts/setup-system.sh
	.venv/bin/ruff check core agentracer_plugins trainer tests examples benchmarks
	.venv/bin/mypy
	.venv/bin/nox

lint: setup
	.venv/bin/ruff check core agentracer_plugins trainer tests examples benchmarks
	.venv/bin/mypy

bench: setup
	for b in benchmarks/bench_*.py; do echo "== $$b"; .venv/bin/python $$b || exit 1; done
