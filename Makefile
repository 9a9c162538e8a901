# The two commands of README.md:
#   make demo   set everything up, then run the live demo (Kafka, worker, simulator, monitor)
#   make test   set everything up, then run the whole test suite (it starts its own broker)
.PHONY: demo test setup setup-test lint format clean

# The recipe is one plain command: make runs it without a shell and passes a SIGTERM on to it, and
# the demo stops everything it started (keep it so, or prefix `exec`: a shell in between would die
# and leave the demo running). tests/e2e/test_demo.py stops `make demo` as `timeout` does.
demo: setup
	.venv/bin/fraud demo

test: setup-test
	.venv/bin/python -m pytest

setup:
	bash deploy/bootstrap.sh

setup-test:
	bash deploy/bootstrap.sh --test

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format:
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

clean:
	rm -rf var .pytest_cache
