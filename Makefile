# Set-up and the two top-level jobs. Each target creates .venv on first use.
VENV   ?= .venv
PYTHON ?= python3
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.aetrig-installed

.PHONY: demo test lint venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[train,generate,plot,dev]'
	touch $(STAMP)

# The main job on the bundled defaults: stream, record, verify, decode and plot.
demo: $(STAMP)
	$(BIN)/aetrig run --duration 20 --rate 50000 --encoders 2 --out runs/demo
	$(BIN)/aetrig verify runs/demo
	$(BIN)/aetrig decode runs/demo --out runs/demo/decoded.root --plots runs/demo/plots

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf runs report bench
