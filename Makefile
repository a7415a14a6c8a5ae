# The two commands of the README. Each builds .venv from the pinned lock file first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9

.PHONY: demo test sandbox venv lock clean

demo: venv
	$(BIN)/migrate demo

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

sandbox: venv
	$(BIN)/migrate sandbox

venv: $(VENV)/.installed

# uv installs the ~300 pinned packages in seconds where pip takes minutes; it is itself pinned.
$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

# Re-pin after changing dependencies in pyproject.toml.
lock: venv
	$(BIN)/uv pip compile --quiet pyproject.toml --extra test --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache
