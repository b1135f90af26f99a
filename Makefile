# Set-up and every job of the project. `make test` and `make demo` install what
# they need (Debian packages, .venv/, the package) and are quick the second time.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
PYTHON := $(VENV)/bin/python
PYTHON_STAMP := $(VENV)/.tfprobr-installed
SYSTEM_STAMP := $(VENV)/.system-packages
BASE_PYTHON ?= python3
# Debian's R and the R packages R's TensorFlow stack needs; reticulate,
# tensorflow and keras3 themselves are CRAN's current releases (below).
DEBIAN_PACKAGES := r-base-core r-base-dev r-cran-testthat \
	r-cran-knitr r-cran-rmarkdown r-cran-magrittr r-cran-roxygen2 pandoc \
	r-cran-backports r-cran-base64enc r-cran-cli r-cran-fastmap r-cran-generics r-cran-glue \
	r-cran-here r-cran-jsonlite r-cran-lifecycle r-cran-matrix r-cran-png r-cran-processx r-cran-ps r-cran-r6 \
	r-cran-rappdirs r-cran-rcpp r-cran-rcpptoml r-cran-rlang r-cran-rprojroot r-cran-rstudioapi \
	r-cran-tidyselect r-cran-vctrs r-cran-whisker r-cran-withr r-cran-yaml r-cran-zeallot
# What r/DESCRIPTION asks for beyond Debian's packages: R's current TensorFlow
# stack (reticulate, tensorflow, keras3), from the local CRAN-like repository
# beside the project when there is one (CRAN cannot be reached here), else the
# user's CRAN. tests/test_install_closure.py checks that these two sources
# cover everything R needs.
export R_CRAN ?= $(abspath ../shared/r-cran)
R_STACK_STAMP := $(VENV)/.r-stack-installed
R_STAMP := $(VENV)/.tfprobr-r-installed
# The Python package ships inside the R package as a wheel, committed, so that
# an R package installed from the repository's files can install its Python
# side (install_tfprobr()). `make r-wheel` rebuilds it after a change to
# tfprobr_bridge/; tests/test_packaging.py fails until then.
SHIPPED_WHEEL_DIR := r/inst/python
R_SOURCES := r/DESCRIPTION r/NAMESPACE $(wildcard r/R/*.R) $(wildcard r/man/*.Rd) \
	$(wildcard $(SHIPPED_WHEEL_DIR)/*.whl)
CHECK_DIR := build/r-check
export TF_CPP_MIN_LOG_LEVEL ?= 2
export KERAS_BACKEND := tensorflow
# The R package records this venv when it is installed (see ?tfprobr::tfprobr_python).
export TFPROBR_VENV := $(abspath $(VENV))
# Offline, R (reticulate, keras3, tfprobr) uses this Python: no managed
# environment, no download.
export RETICULATE_PYTHON := $(abspath $(PYTHON))

.PHONY: help debian-packages r-wheel r-docs setup test-fast r-venv-check test test-python test-r check-r demo demo-python bench clean

help:
	@echo "make test   set up everything, then run every test"
	@echo "make test-fast  the Python tests that start no process and need no R (minutes)"
	@echo "make demo   set up everything, then render the brain-MRI study (out/demo/)"
	@echo "make demo-python  the same study in Python (out/demo-python/)"
	@echo "make bench  compare this layer with TFP's own class (writes bench/results/)"
	@echo "make r-wheel  rebuild the Python wheel the R package ships (after changing tfprobr_bridge/)"
	@echo "make r-docs   regenerate R's layer wrappers and every R help page"
	@echo "make debian-packages  list the Debian packages set-up installs"

debian-packages:
	@echo $(DEBIAN_PACKAGES)

# Debian's R (CRAN is not reachable): rpy2 in the test extra builds against it.
$(SYSTEM_STAMP): Makefile
	@missing=""; \
	for package in $(DEBIAN_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q 'install ok installed' \
	    || missing="$$missing $$package"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  apt-get update -q; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@mkdir -p $(VENV) && touch $@

$(PYTHON_STAMP): pyproject.toml $(SYSTEM_STAMP)
	@[ -x $(PYTHON) ] || $(BASE_PYTHON) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[test,demo,nifti]'
	@touch $@

$(R_STACK_STAMP): $(SYSTEM_STAMP) tools/install_r_stack.R r/DESCRIPTION
	Rscript tools/install_r_stack.R $(R_CRAN) r/DESCRIPTION
	@touch $@

$(R_STAMP): $(R_SOURCES) $(PYTHON_STAMP) $(R_STACK_STAMP)
	R CMD INSTALL --no-multiarch r
	@touch $@

# R's twelve layer wrappers and their pages are generated from the Python
# package's tables (tests/test_generated_r.py fails while they differ).
r-docs: $(PYTHON_STAMP)
	$(PYTHON) tools/generate_r_layers.py
	cd r && Rscript -e 'roxygen2::roxygenise()'

# A fixed timestamp makes the wheel's bytes depend on its contents alone.
r-wheel: $(PYTHON_STAMP)
	rm -f $(SHIPPED_WHEEL_DIR)/*.whl
	# Wheel from the sdist, as the packaging test builds it: never from a stale build/.
	rm -rf build/r-wheel && SOURCE_DATE_EPOCH=315532800 $(PYTHON) -m build --outdir build/r-wheel .
	mv build/r-wheel/*.whl $(SHIPPED_WHEEL_DIR)/ && rm -rf build/r-wheel

# Another checkout may have reinstalled tfprobr for its own venv: then redo it.
r-venv-check: $(R_STACK_STAMP)
	@recorded=$$(Rscript -e 'cat(tryCatch(tfprobr:::install_time_venv, error = function(e) ""))' 2>/dev/null); \
	if [ "$$recorded" != "$(TFPROBR_VENV)" ]; then rm -f $(R_STAMP); fi

setup: $(PYTHON_STAMP) r-venv-check
	@$(MAKE) --no-print-directory $(R_STAMP)

# pytest-xdist runs the tests on one worker per core (two here); any order
# works (tests/conftest.py: --order reverse, --order shuffle:SEED).
PYTEST_WORKERS ?= auto

test-python: setup
	$(PYTHON) -m pytest -n $(PYTEST_WORKERS) --dist worksteal

# The fast lane: no test that starts a process, needs R or takes more than a
# few seconds (about 2 minutes here). Needs only the Python set-up.
test-fast: $(PYTHON_STAMP)
	$(PYTHON) -m pytest -q -n $(PYTEST_WORKERS) --dist worksteal -m "not slow and not subprocess and not r"

test-r: setup
	cd r/tests && Rscript testthat.R

# R CMD check is the R package's definition of done: no ERROR and no WARNING.
# Its output goes to $(CHECK_DIR)/check.out and is printed when it ends, so that
# it can run beside pytest (make test) without the two interleaving.
check-r: setup
	rm -rf $(CHECK_DIR) && mkdir -p $(CHECK_DIR)
	@echo "R CMD check: building and checking r/ (output in $(CHECK_DIR)/check.out)"
	@cd $(CHECK_DIR) && { R CMD build --no-manual --no-build-vignettes $(CURDIR)/r \
	  && _R_CHECK_FUTURE_FILE_TIMESTAMPS_=FALSE R CMD check --no-manual tfprobr_*.tar.gz; } \
	  > check.out 2>&1 || { cat check.out; \
	    cat tfprobr.Rcheck/tests/testthat.Rout.fail 2>/dev/null | tail -n 80; \
	    echo "R CMD check failed: $(CHECK_DIR)/check.out" >&2; exit 1; }
	@cat $(CHECK_DIR)/check.out
	@if grep -E '^\* .*\.\.\. (WARNING|ERROR)' $(CHECK_DIR)/tfprobr.Rcheck/00check.log; then \
	  echo "R CMD check reported the WARNING/ERROR above" >&2; exit 1; fi
	@grep -E '\.\.\. NOTE' $(CHECK_DIR)/tfprobr.Rcheck/00check.log || echo "R CMD check: no NOTEs"

# Everything: pytest's workers and R CMD check (which runs R's tests once) side
# by side. Most tests keep less than one core busy, so they share the cores
# well: 14 minutes here, against 29 one after the other with one pytest process.
test: setup
	@$(MAKE) --no-print-directory -j2 test-python check-r

DEMO_DIR := $(CURDIR)/out/demo
DEMO_PYTHON_DIR := $(CURDIR)/out/demo-python

# The main job: render the R vignette (HTML, figures, model, summary.json in out/demo/).
demo: setup
	Rscript -e 'rmarkdown::render("vignettes/brain-mri-segmentation.Rmd", output_dir = "$(DEMO_DIR)", intermediates_dir = tempdir(), params = list(output_dir = "$(DEMO_DIR)"), quiet = TRUE)'
	$(PYTHON) vignettes/summary.py $(DEMO_DIR)

demo-python: setup
	$(PYTHON) vignettes/brain_mri_segmentation.py --output-dir $(DEMO_PYTHON_DIR)

# Benchmarks (not tests): each comparison in one process, interleaved rounds.
bench: setup
	cd bench && ../$(PYTHON) train_step.py
	cd bench && ../$(PYTHON) predict.py
	cd bench && ../$(PYTHON) family.py
	cd bench && ../$(PYTHON) dense_regression.py
	cd bench && ../$(PYTHON) distribution_head.py
	cd bench && Rscript r_side.R
	cd bench && ../$(PYTHON) volume.py
	cd bench && ../$(PYTHON) report.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
