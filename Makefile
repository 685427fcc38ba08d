# Entry points. Every target prepares the machine first (scripts/bootstrap.sh:
# Debian packages, .venv, libvirtd), so each works on a fresh Debian host as root.
SHELL := /bin/bash
VENV := .venv/bin
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.collections
export PATH := $(CURDIR)/$(VENV):$(PATH)

.PHONY: bootstrap site test test-unit test-integration test-sanity test-lint test-molecule test-xen bench-inventory bench-rollout build

bootstrap:
	@bash scripts/bootstrap.sh

## The main job: the site playbook over inventory/ against the local libvirtd with QEMU.
site: bootstrap
	bash scripts/site.sh

## Everything CI runs.
test: bootstrap
	bash scripts/test.sh all

test-unit: bootstrap
	bash scripts/test.sh unit

test-integration: bootstrap
	bash scripts/test.sh integration

test-sanity: bootstrap
	bash scripts/test.sh sanity

test-lint: bootstrap
	bash scripts/test.sh lint

test-molecule: bootstrap
	bash scripts/test.sh molecule

test-xen: bootstrap
	bash tests/xen/run.sh

bench-inventory: bootstrap
	$(VENV)/python benchmarks/inventory/run.py

bench-rollout: bootstrap
	bash benchmarks/rollout/run.sh

build: bootstrap
	$(VENV)/ansible-galaxy collection build --force --output-path build/
