# The two commands:  make demo  (the attention-vs-fixed-context experiment)   make test  (the suite)
# Both create .venv on first use: torch first (the one already in the venv, else torch==2.13.0,
# else any torch>=2.2), then the project in editable mode with its dev extras.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= runs/demo

.PHONY: demo test lint data clean

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet torch==2.13.0 \
		|| $(BIN)/python -m pip install --quiet "torch>=2.2"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

data/toy/train.en: | $(VENV)/.installed
	$(BIN)/python scripts/make_toy_corpus.py --out data/toy

data: data/toy/train.en

demo: $(VENV)/.installed data/toy/train.en
	$(BIN)/seq2seq-compare data=toy hydra.run.dir=$(DEMO_DIR)

test: $(VENV)/.installed
	$(BIN)/ruff check seq2seq tests scripts benchmarks
	$(BIN)/python -m pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check seq2seq tests scripts benchmarks

clean:
	rm -rf $(VENV) runs outputs multirun data/toy
