# The two set-up commands of the README: `make run` and `make test`.
# Both create (or refresh) .venv from pyproject.toml, so a fresh clone needs nothing by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-clock lint typecheck unit bench clean reliability

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# The main job on the embedded defaults: the example batch into ./outbox (file transport).
run: $(STAMP)
	$(BIN)/notifier run examples/batch.jsonl; status=$$?; \
	  echo; $(BIN)/notifier notices; \
	  echo; echo "The emails are in ./outbox (one .eml per notice)."; \
	  test $$status -le 1

lint: $(STAMP)
	$(BIN)/ruff check notifier tests bench
	$(BIN)/ruff format --check notifier tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest

# The whole suite again on a clock moved forward by 400 days, then by 5 years (libfaketime,
# Debian's `faketime`), so that a test which silently depends on today's date fails today
# instead of some months from now. The monotonic clock stays faked as well (the default):
# with FAKETIME_DONT_FAKE_MONOTONIC, Python 3.11's time.sleep fails with EINVAL on
# libfaketime 0.9.10; what the suite must avoid instead is a thread wait that ends by
# timing out (see tests/support/waiting.py).
FAKETIME_OFFSETS := +400d +5y
test-clock: $(STAMP)
	@lib=$$(ls /usr/lib/*/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1 2>/dev/null | head -n 1); \
	if [ -z "$$lib" ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "installing faketime (libfaketime)"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime; } >/dev/null; \
	  lib=$$(ls /usr/lib/*/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1 2>/dev/null | head -n 1); \
	fi; \
	if [ -z "$$lib" ]; then \
	  echo "error: make test-clock needs libfaketime: install Debian's faketime package (apt-get install faketime) and run it again" >&2; \
	  exit 2; \
	fi; \
	for offset in $(FAKETIME_OFFSETS); do \
	  echo "== the suite with the clock moved $$offset ($$lib)"; \
	  LD_PRELOAD="$$lib" FAKETIME="$$offset" $(BIN)/python -m pytest -q -p no:cacheprovider || exit $$?; \
	done

# The reliability tests at full size (1,000-notice kill runs, 1,000 examples per property),
# then their figures into docs/reliability.md. Takes several minutes.
RELIABILITY_RESULTS := .reliability-results.jsonl
reliability: $(STAMP)
	rm -f $(RELIABILITY_RESULTS)
	NOTIFIER_RELIABILITY=full NOTIFIER_RELIABILITY_RESULTS=$(CURDIR)/$(RELIABILITY_RESULTS) \
	  $(BIN)/python -m pytest -q --timeout=1800 -p no:cacheprovider \
	  tests/integration/test_crash_safety.py tests/integration/test_outages.py \
	  tests/integration/test_operator_commands.py tests/unit/test_hostile_input.py \
	  tests/integration/test_hostile_rendering.py
	$(BIN)/python tests/support/reliability_report.py $(RELIABILITY_RESULTS) docs/reliability.md

bench: $(STAMP)
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.delivery
	$(BIN)/python -m bench.render
	$(BIN)/python -m bench.scheduled_sources
	$(BIN)/python -m bench.webhook
	$(BIN)/python -m bench.bounces

.PHONY: soak bench-workers console-screenshots

# docs/console/*.png: the console after the example batch, in headless Chromium.
console-screenshots: $(STAMP)
	$(BIN)/python tests/support/console_screenshots.py docs/console


# Four worker processes, one SIGKILLed, on PostgreSQL: the full 10,000 notices.
soak: $(STAMP)
	NOTIFIER_SOAK_NOTICES=10000 $(BIN)/python -m pytest -q -s -p no:cacheprovider tests/integration/test_multi_worker.py

# Delivery throughput, 1/2/4 worker processes on PostgreSQL vs 1 on SQLite (needs PostgreSQL).
bench-workers: $(STAMP)
	$(BIN)/python -m bench.workers

clean:
	rm -rf $(VENV) outbox notifier.db .pytest_cache .mypy_cache .ruff_cache
