# Every target that sends or joins runs inside scripts/netns-run: a private network namespace.
# Only unit-pure runs outside one: tests/unit refuses the network to its tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RUNTIME := $(VENV)/.runtime
NETNS  := scripts/netns-run
ACCEPTANCE := ../shared/acceptance
# Debian packages: what scripts/netns-run and the test bed need (the demo needs only these),
# and what the tests use besides. `make system-deps` installs the missing ones.
DEMO_DEBS := iproute2 util-linux
DEBS   := $(DEMO_DEBS) socat iperf sockperf smcroute nftables

.PHONY: demo demo-deps test lint typecheck unit unit-pure acceptance acceptance-present soak bench \
	system-deps clean

# The package alone (runtime dependencies): enough for the demo.
$(RUNTIME): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

# The package with the test tools.
$(STAMP): $(RUNTIME)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

system-deps:
	@scripts/system-deps $(DEBS)

demo-deps:
	@scripts/system-deps $(DEMO_DEBS)

demo: $(RUNTIME) demo-deps
	$(NETNS) $(BIN)/python examples/demo.py

lint: $(STAMP)
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy --strict src examples

# tests/unit and tests/network (pyproject's testpaths), in the namespace.
unit: $(STAMP) system-deps
	$(NETNS) $(BIN)/python -m pytest -m "not soak"

# tests/unit alone, as the calling user, with no namespace and no Debian package.
unit-pure: $(STAMP)
	$(BIN)/python -m pytest -m "not soak" tests/unit

test: lint typecheck unit

# The reference documents' examples, verbatim, from ../shared/acceptance beside the clone
# (not part of `make test`: a clone has nothing beside it).
acceptance: acceptance-present $(STAMP) system-deps
	$(NETNS) $(BIN)/python -m pytest tests/acceptance

acceptance-present:
	@[ -d $(ACCEPTANCE) ] || { \
		echo "acceptance: $(ACCEPTANCE) is not beside this repository: no examples to run" >&2; \
		exit 1; }

soak: $(STAMP) system-deps
	$(NETNS) $(BIN)/python -m pytest -m soak

bench: $(STAMP) system-deps
	$(BIN)/pip install --quiet -e '.[bench]'
	$(NETNS) $(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
