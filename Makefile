# Entry points. Every target prepares the machine first (scripts/bootstrap.sh:
# Debian packages, .venv, libvirtd), so each works on a fresh Debian host as root.
SHELL := /bin/bash
VENV := .venv/bin
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.collections
export PATH := $(CURDIR)/$(VENV):$(PATH)

.PHONY: bootstrap site site-seed test test-ruff lint format test-unit test-integration test-sanity test-matrix test-lint test-molecule \
	test-xen bench-inventory bench-rollout build docs

bootstrap:
	@bash scripts/bootstrap.sh

## The main job: the site playbook over inventory/ against the local libvirtd with QEMU.
## LOGIN=1 adds the login demo: guests cloned from a bootable Debian template, then checked over SSH.
site: bootstrap
	LCFG_XEN_LOGIN=$(LOGIN) bash scripts/site.sh

## The seed's use cases (the talk's slides, inventory-seed/) against the local libvirtd.
## Uses the default NAT network lcfg-nat like the demo site: run one of the two per machine.
## Its template image is built here, at the path the slide gives, never from a profile.
SEED_TEMPLATE := /guests/lcfg_temp.img
site-seed: bootstrap
	@test -e $(SEED_TEMPLATE) || { install -d -m 0700 $(dir $(SEED_TEMPLATE)) && \
	  $(VENV)/python scripts/make-template.py $(SEED_TEMPLATE) --size-gb 1; }
	LCFG_XEN_INVENTORY=inventory-seed/seed.lcfg.yml bash scripts/site.sh

## Everything CI runs.
test: bootstrap
	bash scripts/test.sh all

## Ruff (pyproject.toml): `ruff check` and `ruff format --check`; `make test` runs it first.
test-ruff: bootstrap
	bash scripts/test.sh ruff

lint: test-ruff

## Apply ruff's fixes and formatting to the tree (then review the diff).
format: bootstrap
	$(VENV)/ruff check --fix .
	$(VENV)/ruff format .

test-unit: bootstrap
	bash scripts/test.sh unit

test-integration: bootstrap
	bash scripts/test.sh integration

test-sanity: bootstrap
	bash scripts/test.sh sanity

## Sanity and unit tests under the newest ansible-core on Python 3.13 (.venv-newest).
test-matrix: bootstrap
	bash scripts/test.sh matrix

test-lint: bootstrap
	bash scripts/test.sh lint

test-molecule: bootstrap
	bash scripts/test.sh molecule

test-xen: bootstrap
	bash tests/xen/run.sh

bench-inventory: bootstrap
	$(VENV)/python benchmarks/inventory/run.py
	$(VENV)/python benchmarks/inventory/over_http.py
	$(VENV)/python benchmarks/inventory/limit.py

bench-rollout: bootstrap
	BENCH_REPEAT=3 bash benchmarks/rollout/run.sh
	BENCH_HYPERVISORS=20 BENCH_START=0 BENCH_REPEAT=3 BENCH_COMMUNITY_REPEAT=1 bash benchmarks/rollout/run.sh 50

build: bootstrap
	$(VENV)/python scripts/docs-rst.py  # the guides as the RST extra docs the tarball carries
	$(VENV)/ansible-galaxy collection build --force --output-path build/

## The HTML docs site (antsibull-docs + Sphinx): build/docs/build/html/index.html.
## The guides docs/*.md are its single source (scripts/docs-rst.py converts them).
docs: bootstrap
	bash scripts/docs.sh
