# The two commands a newcomer needs: `make demo` (the main job) and `make test`.
# Both set up whatever is missing: the virtualenv, then the local services.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup system up down status test unit demo bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

system:
	infra/local/system-packages

up:
	infra/local/up

down:
	infra/local/down

status:
	infra/local/status

test: setup system up
	$(BIN)/python -m pytest

unit: setup
	$(BIN)/python -m pytest tests/unit

demo: setup up
	$(BIN)/strongroom demo

# The pipeline beside its ceilings and Quix Streams, a few minutes; writes bench-results.json.
bench: setup up
	$(BIN)/strongroom bench

clean:
	rm -rf $(VENV) build *.egg-info
