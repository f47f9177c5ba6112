# Every target that sends or joins runs inside scripts/netns-run: a private network namespace.
# Only unit-pure runs outside one: tests/unit refuses the network to its tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RUNTIME := $(VENV)/.runtime
NETNS  := scripts/netns-run
ACCEPTANCE := ../shared/acceptance
FASTIO := $(addprefix src/multicast/core/,_fastio.c _fastio_send.c _fastio.h)
# Debian packages. The demo needs only what scripts/netns-run and the test bed use, and a C
# compiler with Python's headers for the extension multicast.core._fastio (without them the
# package uses ctypes); the tests use more; the benchmarks' references more again.
# `make system-deps` installs the missing ones.
DEMO_DEBS  := iproute2 util-linux build-essential python3-dev
DEBS       := $(DEMO_DEBS) socat iperf sockperf smcroute nftables frr tshark
BENCH_DEBS := $(DEBS) udpcast uftp

.PHONY: demo demo-deps routed test lint typecheck unit unit-pure acceptance acceptance-present \
	soak bench bench-files bench-deps system-deps clean

# The package alone (runtime dependencies, the C extension built): enough for the demo.
$(RUNTIME): pyproject.toml setup.py $(FASTIO) src/multicast/reliable/_gf256.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	@# The extension is optional; where a compiler is, it must have been built.
	@backend=$$($(BIN)/python -c 'import multicast.core as c; print(c.IO_BACKEND)'); \
	echo "multicast I/O backend: $$backend"; \
	if [ "$$backend" != extension ] && command -v cc >/dev/null; then \
		echo "the C extension did not build (see pip's output: pip install -v -e .)"; exit 1; fi
	touch $@

# The package with the test tools.
$(STAMP): $(RUNTIME)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

system-deps:
	@scripts/system-deps $(DEBS)

demo-deps:
	@scripts/system-deps $(DEMO_DEBS)

bench-deps:
	@scripts/system-deps $(BENCH_DEBS)

demo: demo-deps $(RUNTIME)
	$(NETNS) $(BIN)/python examples/demo.py

# Multicast across three PIM routers (FRR's pimd): needs root.
routed: system-deps $(RUNTIME)
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

# The reference documents' examples, verbatim, from ../shared/acceptance beside the clone
# (not part of `make test`: a clone has nothing beside it).
acceptance: acceptance-present system-deps $(STAMP)
	$(NETNS) $(BIN)/python -m pytest tests/acceptance

acceptance-present:
	@[ -d $(ACCEPTANCE) ] || { \
		echo "acceptance: $(ACCEPTANCE) is not beside this repository: no examples to run" >&2; \
		exit 1; }

soak: system-deps $(STAMP)
	$(NETNS) $(BIN)/python -m pytest -m soak

bench: bench-deps $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(NETNS) $(BIN)/python benchmarks/run.py

bench-files: bench-deps $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(NETNS) $(BIN)/python benchmarks/bench_files.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis build dist src/multicast/core/_fastio*.so src/multicast/reliable/_gf256*.so
