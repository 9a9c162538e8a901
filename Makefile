# The two commands of README.md:
#   make demo   set everything up, then run the live demo (Kafka, worker, simulator, monitor)
#   make test   set everything up, then run the whole test suite (it starts its own broker)
.PHONY: demo test setup setup-test lint format clean

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
