# make run   : set up .venv and run the default experiment end to end (results/)
# make test  : set up .venv and run the test suite
# GPU=1      : (with install / run / test) add the CUDA stack to .venv: the `gpu` extra of
#              pyproject.toml (CUDA 13 build of torch==2.13.0; JAX stays on the CPU); README, Installing
#
# The venv needs CPython 3.10-3.12 (pyproject.toml: requires-python). PYTHON is the first of
# these that runs and fits; python3.11 first because constraints.txt is its lock. Override with
# `make PYTHON=/path/to/python3.x ...`.
CANDIDATES := python3.11 python3.12 python3.10 python3
FITS := import sys; sys.exit(sys.version_info[0] != 3 or not 10 <= sys.version_info[1] <= 12)
ifeq ($(origin PYTHON),undefined)
PYTHON := $(firstword $(foreach p,$(CANDIDATES),$(shell $(p) -c '$(FITS)' >/dev/null 2>&1 && echo $(p))))
endif
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
GPU ?= 0
# With GPU=1, install also needs the stamp of the CUDA stack (a second pip run over the first).
GPU_STAMP := $(if $(filter 1,$(GPU)),$(VENV)/.gpu-installed)

.PHONY: install run test lint dryrun clean

$(BIN)/snakemake: pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { echo "make: no supported Python found (tried $(CANDIDATES)). LOOD needs CPython 3.10, 3.11 or 3.12 (3.11 matches constraints.txt); install one, or run make PYTHON=/path/to/python3.11" >&2; exit 1; }
	@$(PYTHON) -c '$(FITS)' 2>/dev/null || { echo "make: PYTHON=$(PYTHON) is $$($(PYTHON) -V 2>&1); LOOD needs CPython 3.10, 3.11 or 3.12 (3.11 matches constraints.txt)" >&2; exit 1; }
	@if [ -x $(BIN)/python ] && ! $(BIN)/python -c '$(FITS)' 2>/dev/null; then echo "removing $(VENV): made by an unsupported Python"; rm -rf $(VENV); fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[all,dev]'
	touch $@

# torch===2.13.0 in the gpu extra excludes the CPU build 2.13.0+cpu, replacing it if installed;
# the check fails loudly if pip still picked a CPU build (e.g. from a local wheel directory).
$(VENV)/.gpu-installed: $(BIN)/snakemake
	$(BIN)/pip install -q -c constraints.txt -e '.[all,dev,gpu]'
	$(BIN)/python -c "import torch; assert torch.version.cuda, 'torch ' + torch.__version__ + ' is a CPU build'; print('CUDA stack installed: torch', torch.__version__, '(CUDA', torch.version.cuda + '); JAX on the CPU')"
	touch $@

install: $(BIN)/snakemake $(GPU_STAMP)

run: install
	$(BIN)/snakemake --cores $(CORES) --scheduler greedy

test: lint
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakemake --lint

dryrun: install
	$(BIN)/snakemake -n --cores $(CORES)

clean:
	rm -rf results .snakemake
