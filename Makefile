# Two commands set up a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
PY      = $(VENV)/bin/python
DEMO_DIR ?= runs/demo

.PHONY: install demo test bench clean

# torch goes first and pinned, so nothing later can swap in a CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) -m ultrassl.demo --out $(DEMO_DIR)

test: install
	$(PY) -m pytest -q tests

bench: install
	$(PY) benchmarks/data_loading.py
	$(PY) benchmarks/pipeline_overhead.py
	$(PY) benchmarks/fit_memory.py
	$(PY) benchmarks/pack_throughput.py
	$(PY) benchmarks/av_parameters.py

clean:
	rm -rf $(VENV) runs
