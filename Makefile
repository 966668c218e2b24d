# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
LOCAL_STAMP := $(VENV)/.installed-local
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
# install-test gets Debian's redis-server when it is missing: the tests start their own on free ports.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install install-local install-test demo test crawl deploy bench bench-crawl bench-pipeline bench-ratelimit bench-workers clean

install: $(STAMP)

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements.txt
	touch $(STAMP)

# The local sites (demo, benchmarks): aiohttp on top of the runtime set.
install-local: $(LOCAL_STAMP)

$(LOCAL_STAMP): $(STAMP) requirements-local.txt
	$(PIP) -r requirements-local.txt
	touch $(LOCAL_STAMP)

install-test: $(TEST_STAMP)

$(TEST_STAMP): $(STAMP) requirements-test.txt requirements-local.txt requirements-report.txt
	$(PIP) -r requirements-test.txt
	command -v redis-server >/dev/null || $(SUDO) apt-get install -y -q redis-server \
		|| ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q redis-server)
	touch $(TEST_STAMP)

demo: install-local
	$(PY) -m localsite.demo

test: install-test
	$(PY) -m ruff check scraper localsite tests bench
	$(PY) -m mypy
	$(PY) -m pytest

bench: bench-crawl bench-pipeline bench-ratelimit bench-workers

bench-crawl: install-local
	$(PY) -m bench.crawl

bench-pipeline: install-local
	$(PY) -m bench.pipeline

bench-ratelimit: install-local
	$(PY) -m bench.ratelimit

bench-workers: install-local
	$(PY) -m bench.workers

crawl: install
	$(PY) -m scrapy crawl books

# Build an egg of the `scraper` package (setup.py) and upload it to a Scrapyd target of scrapy.cfg
# (`make deploy DEPLOY_TARGET=prod`). The Scrapyd host needs requirements.txt installed: eggs carry
# no dependencies.
DEPLOY_TARGET ?= local
SCRAPYD_DEPLOY := $(VENV)/bin/scrapyd-deploy

deploy: install $(SCRAPYD_DEPLOY)
	$(SCRAPYD_DEPLOY) $(DEPLOY_TARGET)

$(SCRAPYD_DEPLOY): | $(STAMP)  # installed only if missing, at the pins of requirements-test.txt
	$(PIP) $$(grep -oE '^(scrapyd-client|uberegg)==[^ #]+' requirements-test.txt)

clean:
	rm -rf data build *.egg-info .pytest_cache bench/results
