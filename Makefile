# Every target that sends or joins runs inside scripts/netns-run: a private network namespace.
# Only unit-pure runs outside one: tests/unit refuses the network to its tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NETNS  := scripts/netns-run
# Debian packages the tests use; `make system-deps` installs the missing ones. build-essential
# and python3-dev compile the C extension multicast.core._fastio (without them: ctypes).
DEBS   := iproute2 util-linux socat iperf sockperf smcroute frr tshark nftables udpcast uftp \
          build-essential python3-dev

.PHONY: demo routed test lint typecheck unit unit-pure soak bench bench-files system-deps clean

$(STAMP): pyproject.toml setup.py src/multicast/core/_fastio.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@# The extension is optional; where a compiler is, it must have been built.
	@backend=$$($(BIN)/python -c 'import multicast.core as c; print(c.IO_BACKEND)'); \
	echo "multicast I/O backend: $$backend"; \
	if [ "$$backend" != extension ] && command -v cc >/dev/null; then \
		echo "the C extension did not build (see pip's output: pip install -v -e .)"; exit 1; fi
	touch $@

system-deps:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

demo: system-deps $(STAMP)
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
unit: system-deps $(STAMP)
	$(NETNS) $(BIN)/python -m pytest -m "not soak"

# tests/unit alone, as the calling user, with no namespace and no Debian package.
unit-pure: $(STAMP)
	$(BIN)/python -m pytest -m "not soak" tests/unit

test: system-deps lint typecheck unit

soak: system-deps $(STAMP)
	$(NETNS) $(BIN)/python -m pytest -m soak

bench: system-deps $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(NETNS) $(BIN)/python benchmarks/run.py

bench-files: $(STAMP) system-deps
	$(BIN)/pip install --quiet -e '.[bench]'
	$(NETNS) $(BIN)/python benchmarks/bench_files.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis build dist src/multicast/core/_fastio*.so
