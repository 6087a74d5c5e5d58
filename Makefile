# Each target is one line over the tools; scripts/test.sh is what the README and CI run.
.PHONY: check test
check:
	ruff format --check src tests bench && ruff check src tests bench && mypy && lint-imports
test:
	bash scripts/test.sh
