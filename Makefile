# Two commands do all set-up on a fresh machine (see README.md):
#   make demo   installs into .venv and runs the main job on the embedded Vaswani collection
#   make test   installs into .venv and runs the test suite
#   make docs   installs into .venv and builds the documentation site into site/ (mkdocs, strict)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test docs benchmarks clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: a CPU wheel of 2.13.0 is on these machines; an unpinned torch pulls a CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	# the ray extra too: the tests run gaia.parallel on a local Ray cluster
	$(BIN)/pip install --quiet -e '.[test,ray]'
	touch $@

demo: $(STAMP)
	$(BIN)/gaia demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

docs: $(STAMP)
	$(BIN)/python -m mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) *.egg-info site
