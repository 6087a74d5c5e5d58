# Each target runs the tools from the project venv .venv (scripts/venv.sh);
# scripts/test.sh is what the README and CI run.
.PHONY: check test
check:
	bash scripts/venv.sh test
	.venv/bin/ruff format --check src tests bench && .venv/bin/ruff check src tests bench && .venv/bin/mypy && .venv/bin/lint-imports
test:
	bash scripts/test.sh
