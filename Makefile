# The two commands:  make demo  (the attention-vs-fixed-context experiment)   make test  (the suite)
# Both create .venv on first use: torch first (the one already in the venv, else torch==2.13.0,
# else any torch>=2.2), then the project in editable mode with its dev extras.
# The installed distribution is called seq2seq-attention; the import name is seq2seq.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= runs/demo
SWEEP_DIR ?= runs/sweep-toy
SWEEP_ARGS ?= trainer.progress=false

.PHONY: demo readme-demo sweep test lint data clean

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet torch==2.13.0 \
		|| $(BIN)/python -m pip install --quiet "torch>=2.2"
	$(BIN)/python -m pip uninstall --quiet --yes seq2seq 2>/dev/null || true  # the project's name before 0.1.0's wheel
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

data/toy/train.en: | $(VENV)/.installed
	$(BIN)/python scripts/make_toy_corpus.py --out data/toy

data: data/toy/train.en

demo: $(VENV)/.installed data/toy/train.en
	$(BIN)/seq2seq-compare data=toy hydra.run.dir=$(DEMO_DIR)

# The README's demo table and by-length table, rewritten from a fresh demo run.
readme-demo: demo
	$(BIN)/python scripts/demo_table.py $(DEMO_DIR) --readme README.md

# Every attention and fixed-context variant on the toy corpus, one table (issue 6's sweep):
# 5 scores x 2 placements, both fixed-context decoders, and the self-attention encoder under
# three decoders; finished runs are skipped when run again (runs named the pre-0.1.0 way,
# 0-model=attention,..., are not recognised: delete them, or gather them as they are).
sweep: $(VENV)/.installed data/toy/train.en
	$(BIN)/seq2seq-train -m model=attention,luong model/attention=dot,scaled_dot,general,additive,cosine \
		$(SWEEP_ARGS) hydra.sweep.dir=$(SWEEP_DIR)/rnn
	$(BIN)/seq2seq-train -m model=fixed_context,sutskever $(SWEEP_ARGS) hydra.sweep.dir=$(SWEEP_DIR)/fixed
	$(BIN)/seq2seq-train -m model=attention,luong,fixed_context model.encoder=self_attention model.encoder_layers=2 \
		$(SWEEP_ARGS) hydra.sweep.dir=$(SWEEP_DIR)/self_attention
	$(BIN)/seq2seq-gather 'runs=[$(SWEEP_DIR)/rnn,$(SWEEP_DIR)/fixed,$(SWEEP_DIR)/self_attention]' \
		hydra.run.dir=$(SWEEP_DIR)/report

test: $(VENV)/.installed
	$(BIN)/ruff check seq2seq tests scripts benchmarks
	$(BIN)/python -m pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check seq2seq tests scripts benchmarks

clean:
	rm -rf $(VENV) runs outputs multirun data/toy build *.egg-info
