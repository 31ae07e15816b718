# Everything a fresh machine needs: `make demo` and `make test` create what they use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
TAP := $(VENV)/bin/tap-klaviyo
PY := $(VENV)/bin/python

.PHONY: install demo test bench sandbox clean

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

# Targets and checkers live in their own virtualenvs: their pins clash with the tap's.
# target-duckdb asks only for duckdb>=1.0; the demo's row-for-row check ran against this one.
.venv-target-duckdb/.installed:
	$(PYTHON) -m venv .venv-target-duckdb
	.venv-target-duckdb/bin/pip install -q target-duckdb==0.8.0 duckdb==1.5.6
	touch $@

.venv-target-postgres/.installed:
	$(PYTHON) -m venv .venv-target-postgres
	.venv-target-postgres/bin/pip install -q meltanolabs-target-postgres==0.8.1
	touch $@

# Meltano, for the README's Meltano commands run end to end (tests/test_meltano.py); it installs the
# example's plugins with uv, which it depends on
.venv-meltano/.installed:
	$(PYTHON) -m venv .venv-meltano
	.venv-meltano/bin/pip install -q meltano==4.4.1 uv==0.13.9
	touch $@

.venv-singer-tools/.installed:
	$(PYTHON) -m venv .venv-singer-tools
	.venv-singer-tools/bin/pip install -q singer-tools==0.4.1
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed .venv-target-duckdb/.installed
	$(PY) scripts/demo.py

# -v: one line per test as it finishes, so a long run shows what it is doing
test: $(VENV)/.installed .venv-singer-tools/.installed .venv-target-postgres/.installed .venv-target-duckdb/.installed \
		.venv-meltano/.installed
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH $(PY) -m pytest -v tests

# sparse, dense and the mixed sandbox year (20,000 and 200,000 events), each at the default
# concurrency and at 1; the `events` stream on sparse and dense; `profiles` on 50,000 profiles; the
# late-event check on sparse and dense; then the resource streams on the resources account (a first
# run, nothing changed, a few changes: about 12 min, the flow endpoints' documented 60 a minute);
# last, a first run of every stream on the whole account against the rate-limit floor (about 12 min).
# `.venv/bin/python scripts/bench.py --help` for one shape or another tree. BENCH_ARGS adds to the
# first: `make bench BENCH_ARGS="--mechanisms 7"` runs sparse and dense with each concurrency
# mechanism switched off in turn instead (docs/concurrency.md)
bench: $(VENV)/.installed
	$(PY) scripts/bench.py --shapes sparse,dense,default,profiles --default-sizes 20000,200000 \
		--events-shapes sparse,dense --profiles 50000 $(BENCH_ARGS)
	$(PY) scripts/bench.py --resources-only --latency-ms 20
	$(PY) scripts/bench.py --whole-only --latency-ms 20

# the local Klaviyo sandbox on http://127.0.0.1:8765, until Ctrl-C
sandbox: $(VENV)/.installed
	$(PY) -m tests.sandbox --port 8765

clean:
	rm -rf $(VENV) .venv-target-duckdb .venv-target-postgres .venv-singer-tools .venv-meltano demo-output \
		*.egg-info
