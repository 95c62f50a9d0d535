# Two commands matter (README.md): `make run` and `make test`. Everything else is a step they take.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= gateway.yaml
PYTEST_ARGS ?=
# The suite runs in parallel (pytest-xdist, tests/conftest.py): each test binds free ports of its own. Its
# event loops mostly wait on real peers, round trips and timers (at 5 workers they use 1.5 of 2 cores):
# a warm run took 640 s at 5 workers, 718 s at 4 and 609 s at 6 on 2 cores. At 6 the first minute of a
# fresh clone reaches load 12 and three such runs each failed a test on timing; 5 keeps it near 6.
# TEST_WORKERS=6 for speed, 4 where the machine is shared (peers/ports.py has port bands for 8).
TEST_WORKERS ?= 5
XDIST := -n $(TEST_WORKERS) --dist worksteal
# Python's bytecode cache stays on for everything make starts. Where the environment sets
# PYTHONDONTWRITEBYTECODE, every pytest worker would compile the project and rewrite every test module's
# asserts again (17 of a worker's 19 s of collection), and so would each gateway process a test starts.
unexport PYTHONDONTWRITEBYTECODE
# the project's bytecode and pytest's rewritten test modules, once, before pytest's workers import them
PRECOMPILE = scripts/precompile $(BIN)/python
SOFTPHONES := peers/js-softphones
# the native fast lane's sources (compiled at install: a change reinstalls)
NATIVE := $(wildcard gateway/media/fastlane/_fastlane*.[ch] gateway/media/fastlane/_stun.[ch])

.PHONY: run dist test-fast test-durations call-bench setup-bench vs-rtpengine-bench scale-bench janus-bench network-change-bench takeover-bench rolling-bench cluster-bench quality-bench bench-deps test test-deps system-deps typecheck lint format bench clean

$(BIN)/python:
	@echo "creating $(VENV)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# setuptools' notices that are not problems, filtered by their first words (any other warning or error
# still shows): pyproject.toml's ext-modules table is "still *experimental*", and an editable install
# prints how it was made ("Editable installation.").
QUIET_SETUPTOOLS := PYTHONWARNINGS='ignore:Editable installation.,ignore:`[tool.setuptools.ext-modules]`'

# Stamps: reinstall only when a pyproject.toml or the native fast lane's source changes (it is compiled).
# The demo desk phone (pjsua2) is optional. peers/ (test peers: desk phone, sipp, Kamailio, browser
# stand-ins) is a distribution of its own, installed beside the gateway and never part of its wheel.
# `make run` shows pip's progress (the first install takes about a minute: the fast lane is compiled).
$(VENV)/.stamp-run: pyproject.toml peers/pyproject.toml $(NATIVE) | $(BIN)/python
	@echo "make run: installing the gateway and the demo phone into $(VENV) (the first time takes about a minute)"
	$(QUIET_SETUPTOOLS) $(BIN)/python -m pip install --progress-bar on -e '.[demo]' -e ./peers || $(QUIET_SETUPTOOLS) $(BIN)/python -m pip install --progress-bar on -e . -e ./peers
	touch $@

# (the bench extra too: tests/bench checks the quality bench's PESQ scoring and its browser's playout)
$(VENV)/.stamp-test: pyproject.toml peers/pyproject.toml $(NATIVE) | $(BIN)/python
	$(QUIET_SETUPTOOLS) $(BIN)/python -m pip install --quiet -e '.[test,dev,bench]' -e ./peers
	touch $@ $(VENV)/.stamp-run

## run: install into .venv and start the gateway with $(CONFIG) and the demo desk phone (extension 2000)
# (exec: the script is make's own child, so a Ctrl-C it handles ends with no "make: *** Interrupt")
run: $(VENV)/.stamp-run
	BIN=$(BIN) CONFIG=$(CONFIG) exec scripts/demo

## dist: the sdist and the wheel (the native fast lane compiled: gcc, python3-dev) into dist/, for `pip install dist/*.whl`
# python -m build: the wheel is built from the sdist, so both are checked (tests/deploy/test_wheel.py does the same).
# `build`, the PEP 517 front end, is pinned as in pyproject.toml's test extra.
dist: | $(BIN)/python
	$(BIN)/python -m pip install --quiet 'build>=1.2,<2'
	$(BIN)/python -m build --outdir dist .

## test: install what the tests need (pip, and Debian packages when root), check style and types, run the whole suite
test: test-deps lint
	$(PRECOMPILE)
	$(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS)

## test-durations: run the whole suite and keep each test's time in tests/durations.json, which orders the
## parallel suite: longest first, equal work per worker (tests/schedule.py). Rerun when tests grow slower.
test-durations: test-deps
	$(PRECOMPILE)
	$(BIN)/python -m pytest $(XDIST) --write-durations $(PYTEST_ARGS)

## test-fast: the inner loop: unit and in-process tests (not tests/e2e, nor a module marked `peer`, which
## drives a browser, a desk phone, Kamailio... : tests/conftest.py), in parallel, no lint nor the whole-tree
## checks kin to it (marked `static`), a fifth of the property tests' examples (TEST_FAST=1)
test-fast: test-deps
	$(PRECOMPILE)
	TEST_FAST=1 $(BIN)/python -m pytest $(XDIST) --ignore=tests/e2e -m "not peer and not static" $(PYTEST_ARGS)

test-deps: system-deps $(VENV)/.stamp-test $(SOFTPHONES)/build/.stamp

# The browser SIP libraries the tests drive (JsSIP, SIP.js; pinned in package-lock.json), bundled for
# the test page by build.mjs (esbuild). npm comes from scripts/system-packages.txt.
$(SOFTPHONES)/build/.stamp: $(SOFTPHONES)/package-lock.json $(SOFTPHONES)/build.mjs
	@command -v npm >/dev/null || { echo "npm is missing (apt-get install npm)" >&2; exit 1; }
	cd $(SOFTPHONES) && npm ci --no-audit --no-fund --loglevel=error && node build.mjs
	touch $@

system-deps:
	@scripts/install-system-deps

typecheck: $(VENV)/.stamp-test
	$(BIN)/mypy

## lint: ruff's lint rules, ruff's formatting and strict mypy over the whole tree (config: pyproject.toml)
lint: $(VENV)/.stamp-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## format: rewrite the tree in ruff's format and apply ruff's safe fixes
format: $(VENV)/.stamp-test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(VENV)/.stamp-run
	$(BIN)/python bench/sdp_bench.py

## call-bench: call setup time and the gateway's added latency at 1 and 20 calls/s (needs sipp)
call-bench: $(VENV)/.stamp-test
	$(BIN)/python bench/call_bench.py

## setup-bench: offer -> answer and offer -> connected on the HTTP offer API and the WebSocket protocol (needs sipp)
setup-bench: $(VENV)/.stamp-test
	$(BIN)/python bench/setup_bench.py

## vs-rtpengine-bench: CPU, RSS, loss, latency of our bridge vs rtpengine (user space) vs a bare C relay (needs make bench-deps, cc)
vs-rtpengine-bench: $(VENV)/.stamp-test
	$(BIN)/python bench/vs_rtpengine.py $(CALLS)

## scale-bench: vs-rtpengine-bench's boxes at 100-500 calls (MODES=passthrough,transcoding), peers' media pumped in C (needs cc)
scale-bench: $(VENV)/.stamp-test
	$(BIN)/python bench/scale_bench.py $(or $(CALLS),100,200,300,500) --modes $(or $(MODES),passthrough)

## janus-bench: call setup vs Janus's SIP plugin in network namespaces the bench makes (root, needs make bench-deps, sipp)
janus-bench: $(VENV)/.stamp-test
	$(BIN)/python bench/vs_janus.py

## network-change-bench: the audio gap when a client's address changes mid-call, per dialect (root: a network namespace)
network-change-bench: $(VENV)/.stamp-test
	$(BIN)/python bench/network_change_bench.py --calls $(or $(CALLS),20)

## takeover-bench: kill -9 of an instance carrying 20 calls (3 instances, Redis, Kamailio, HAProxy): calls back, the gap
takeover-bench: $(VENV)/.stamp-test
	$(BIN)/python bench/takeover_bench.py --calls $(or $(CALLS),20)

## rolling-bench: each of 3 instances drained, exited and started again under 20 calls: calls kept, audio gaps
rolling-bench: $(VENV)/.stamp-test
	$(BIN)/python bench/rolling_bench.py --calls $(or $(CALLS),20)

## cluster-bench: 1 vs 3 instances behind Kamailio + Redis: setup rate/p99, added setup time, kill -9 failover times
cluster-bench: $(VENV)/.stamp-test
	$(BIN)/python bench/cluster_bench.py

# The bench extra (pyproject.toml: pesq, numpy) beside the test install.
$(VENV)/.stamp-bench: $(VENV)/.stamp-test
	$(QUIET_SETUPTOOLS) $(BIN)/python -m pip install --quiet -e '.[test,dev,bench]' -e ./peers
	touch $@

## quality-bench: PESQ MOS-LQO of speech through the gateway vs rtpengine under seeded loss, bursts, jitter (RUNS=3; needs make bench-deps)
quality-bench: $(VENV)/.stamp-bench
	$(BIN)/python bench/quality_bench.py --runs $(or $(RUNS),1)

## bench-deps: the Debian packages the benchmarks compare with or need (scripts/bench-packages.txt: rtpengine, Janus, espeak-ng, sox)
bench-deps:
	@scripts/install-system-deps scripts/bench-packages.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .hypothesis build dist *.egg-info
