# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: install install-test demo test crawl bench bench-pipeline bench-ratelimit clean

install: $(STAMP)

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements.txt
	touch $(STAMP)

install-test: $(TEST_STAMP)

$(TEST_STAMP): $(STAMP) requirements-test.txt
	$(PIP) -r requirements-test.txt
	touch $(TEST_STAMP)

demo: install
	$(PY) -m scraper.demo

test: install-test
	$(PY) -m pytest

bench: bench-pipeline bench-ratelimit

bench-pipeline: install
	$(PY) -m bench.pipeline

bench-ratelimit: install
	$(PY) -m bench.ratelimit

crawl: install
	$(PY) -m scrapy crawl books

clean:
	rm -rf data build *.egg-info .pytest_cache bench/results
