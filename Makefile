# The two commands of the README: `make quickstart` and `make test`.
# Both create .venv and install everything into it first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install quickstart test slurm browser abctools bench clean

$(BIN)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The CPU build of torch first, from local disk, so that nothing later resolves a CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

install: $(BIN)/.installed

quickstart: install abctools
	$(BIN)/smslab quickstart

# A one-node Slurm cluster with accounting for the Slurm end-to-end test
# (needs root; without it the script says so and that test is skipped outside CI).
slurm:
	bash .ci/slurm-up.sh

# Headless Chromium (Debian's package) for the dashboard browser tests (root; skipped without it outside CI).
browser:
	bash .ci/browser-up.sh

# Debian's abcmidi and abcm2ps for `smslab eval abc` and its tests (root; without it their tiers are unavailable).
abctools:
	bash .ci/abc-tools-up.sh

test: install slurm browser abctools
	$(BIN)/lint-imports
	SLURM_CONF=/etc/slurm/slurm.conf $(BIN)/python -m pytest -n 2 --dist loadfile

bench: install
	$(BIN)/python bench/lawfit_speed.py
	$(BIN)/python bench/corpus_speed.py
	$(BIN)/python bench/trainer_speed.py
	$(BIN)/python bench/storage_speed.py

clean:
	rm -rf $(VENV) smslab-quickstart artifacts
