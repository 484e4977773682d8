# The whole set-up is two commands: `make localnet` (chain + demo) and `make test` (install + suite).
.PHONY: setup localnet localnet-down localnet-clean test test-fast lint bench

setup:
	@bash scripts/setup.sh

# Start a 4-validator localnet on 127.0.0.1 and run the demo; leaves it running (`make localnet-down`).
localnet: setup
	@.venv/bin/python -m nesachain.localnet demo

localnet-down:
	@.venv/bin/python -m nesachain.localnet down

# Stop the localnet and delete its folder (.localnet/): the next `make localnet` starts from genesis.
localnet-clean:
	@.venv/bin/python -m nesachain.localnet down --clean

# Installs what tests need, then runs the whole suite. pytest's exit 5 ("no tests ran") is a failure.
test: setup
	@bash scripts/test.sh

test-fast: setup
	@bash scripts/test.sh -m "not localnet and not slow"

lint: setup
	.venv/bin/ruff check nesachain tests bench
	.venv/bin/mypy

bench: setup
	.venv/bin/python bench/chain_tps.py
