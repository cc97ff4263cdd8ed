# Every target sets up what it needs on a fresh machine: a virtualenv in .venv
# with eager_rt (native scanner built) and all extras installed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TPS ?= 50

.PHONY: setup demo test bench lint docs docker clean

$(STAMP): pyproject.toml setup.py $(wildcard native/*.pyx)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel cython
	$(BIN)/pip install --quiet -e '.[all,dev]'
	$(BIN)/python -c "import eager_rt; print('eager_rt installed; native scanner:', eager_rt.NATIVE)"
	touch $(STAMP)

setup: $(STAMP)

## The live demo: a data-analysis script replayed as a model would stream it,
## serial and eager side by side on the local backend.
demo: $(STAMP)
	$(BIN)/eager run examples/sales_report.py --backend local --tps $(TPS) --mode both \
		--timeline demo_timeline.png

## The whole test suite. As root, it first brings up a Docker engine and the
## test image (scripts/setup-docker.sh), then Podman with the same image
## (scripts/setup-podman.sh) and bubblewrap (scripts/setup-bwrap.sh); without
## them, their tests skip.
test: $(STAMP)
	@if [ "$$(id -u)" = 0 ]; then bash scripts/setup-docker.sh || echo "Docker unavailable: its tests will skip"; fi
	@if [ "$$(id -u)" = 0 ]; then bash scripts/setup-podman.sh || echo "Podman unavailable: its tests will skip"; fi
	@if [ "$$(id -u)" = 0 ]; then bash scripts/setup-bwrap.sh || echo "bubblewrap unavailable: its tests will skip"; fi
	$(BIN)/python -m pytest tests -q -ra

bench: $(STAMP)
	$(BIN)/python -m pytest bench -q --benchmark-only -s

lint: $(STAMP)
	$(BIN)/ruff check eager_rt backends tests bench
	bash scripts/typecheck.sh

## The documentation site (mkdocs.yml, docs/) in strict mode, into build/site.
docs: $(STAMP)
	bash scripts/build-docs.sh

docker:
	bash scripts/setup-docker.sh

clean:
	rm -rf $(VENV) build *.egg-info eager_rt/*.so native/*.c
