# Set-up and the two top-level jobs. Each target creates .venv on first use.
VENV   ?= .venv
PYTHON ?= python3
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.aetrig-installed

.PHONY: demo test test-fast test-containers image lint venv clean system-packages

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[train,generate,plot,dev,compress,analysis]'
	touch $(STAMP)

# The main job on the bundled defaults: stream, record, verify, decode and plot.
demo: $(STAMP)
	$(BIN)/aetrig run --duration 20 --rate 50000 --encoders 2 --out runs/demo
	$(BIN)/aetrig verify runs/demo
	$(BIN)/aetrig decode runs/demo --out runs/demo/decoded.root --plots runs/demo/plots

# Debian packages the tests run for real: prometheus (+ promtool) and iproute2 (network namespaces).
# Installed here when missing and we are root with apt-get; otherwise one line says how, before any test.
SYSTEM_BINARIES = prometheus promtool ip
SYSTEM_PACKAGES = prometheus iproute2

system-packages:
	@missing=""; for b in $(SYSTEM_BINARIES); do command -v $$b >/dev/null 2>&1 || missing="$$missing $$b"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "make: installing Debian packages $(SYSTEM_PACKAGES) (missing:$$missing)"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null || exit 1; \
	  else \
	    echo "make: the tests need$$missing: install them with 'sudo apt-get install -y $(SYSTEM_PACKAGES)', then rerun"; \
	    exit 1; \
	  fi; \
	fi

# Everything, the long integration tests (@pytest.mark.slow) included, but the container tests (below).
test: $(STAMP) system-packages
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest -q -m "not containers"

# The container image of every stage (deploy/Dockerfile) with podman or docker, on python:3.11-slim or, where
# that cannot be pulled, on a Debian bookworm base made with mmdebstrap. No virtual environment needed.
# IMAGE_FLAGS: e.g. --runtime runc, --tag aetrig:0.1.0, --prometheus aetrig-prometheus:latest
image:
	$(PYTHON) -m emulator.ops.image $(IMAGE_FLAGS)

# deploy/ run for real in podman (@pytest.mark.containers): the image, the Compose stack, the Kubernetes
# manifests under `podman kube play`. Needs podman, runc, podman-compose and mmdebstrap (.ci/run installs
# them); the images are built once and reused while their inputs are unchanged. CI runs it after `make test`.
test-containers: $(STAMP)
	$(BIN)/pytest -q -m containers

# The edit loop: all but the slow tests, on two pytest-xdist workers, in about a minute (one short
# end-to-end `aetrig run` stays in). `make test` stays serial: its long runs each want both cores.
test-fast: $(STAMP) system-packages
	$(BIN)/pytest -q -n 2 -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf runs report bench
