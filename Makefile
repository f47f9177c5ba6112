# Every target that sends or joins runs inside scripts/netns-run: a private network namespace.
# Only unit-pure runs outside one: tests/unit refuses the network to its tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NETNS  := scripts/netns-run
# Debian packages the tests use; `make system-deps` installs the missing ones.
DEBS   := iproute2 util-linux socat iperf sockperf smcroute frr tshark nftables udpcast uftp

.PHONY: demo routed test lint typecheck unit unit-pure soak bench bench-files system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

system-deps:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

demo: $(STAMP) system-deps
	$(NETNS) $(BIN)/python examples/demo.py

# Multicast across three PIM routers (FRR's pimd): needs root.
routed: $(STAMP) system-deps
	$(NETNS) $(BIN)/python examples/routed.py

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

soak: $(STAMP) system-deps
	$(NETNS) $(BIN)/python -m pytest -m soak

bench: $(STAMP) system-deps
	$(BIN)/pip install --quiet -e '.[bench]'
	$(NETNS) $(BIN)/python benchmarks/run.py

bench-files: $(STAMP) system-deps
	$(BIN)/pip install --quiet -e '.[bench]'
	$(NETNS) $(BIN)/python benchmarks/bench_files.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
