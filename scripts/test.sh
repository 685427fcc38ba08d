#!/usr/bin/env bash
# The test command (make test / .ci/run). Stages: ruff, sanity, lint, docs, then ONE pytest run
# over unit, integration (real libvirtd + QEMU, molecule, the site playbook) and the
# real-Xen lab, so the last line printed is pytest's summary.
# The matrix stage runs sanity and the unit tests again under the newest ansible-core on
# Python 3.13 (scripts/matrix.sh, .venv-newest).
# Usage: scripts/test.sh all|ruff|sanity|matrix|lint|docs|unit|integration|molecule|xen
set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
export ANSIBLE_NOCOLOR=1
# libguestfs tries KVM first for its appliance; under nested virtualisation that attempt
# can spin without end (seen on the test machines), so our own runs use TCG unless
# LIBGUESTFS_BACKEND_SETTINGS is set (set it empty to let libguestfs try KVM).
export LIBGUESTFS_BACKEND_SETTINGS="${LIBGUESTFS_BACKEND_SETTINGS-force_tcg}"
PYTEST=(pytest -p no:cacheprovider)

stage() { printf '\n==== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

# A stage function runs every one of its checks and fails if any failed: called as
# `run_x || failed+=(x)`, bash does not apply set -e inside it.
run_ruff() {
  local rc=0
  stage "ruff check (pyproject.toml)"
  ruff check --no-fix . || rc=1
  stage "ruff format --check"
  ruff format --check . || rc=1
  return "$rc"
}

run_sanity() {
  stage "ansible-test sanity"
  bash scripts/sanity.sh
}

run_matrix() {
  stage "matrix: newest ansible-core on Python 3.13 (sanity, unit)"
  bash scripts/matrix.sh
}

run_lint() {
  local rc=0 mod
  stage "ansible-doc renders every plugin"
  for mod in plugins/modules/*.py; do
    mod="$(basename "$mod" .py)"
    ansible-doc "lcfg.xen.$mod" >/dev/null || rc=1
  done
  ansible-doc -t inventory lcfg.xen.lcfg >/dev/null || rc=1
  stage "antsibull-changelog lint (changelogs/)"
  antsibull-changelog lint || rc=1
  stage "ansible-galaxy collection build"
  ansible-galaxy collection build --force --output-path build/ >/dev/null || rc=1
  if [[ -d roles && -n "$(ls roles 2>/dev/null)" ]]; then
    stage "ansible-lint"
    # A private HOME: ansible-lint puts ~/.ansible/collections first in the collections path, where
    # an older installed lcfg.xen (molecule's, a user's) would shadow this checkout's modules.
    lint_home="$(mktemp -d)"
    HOME="$lint_home" ansible-lint --offline -q roles playbooks || rc=1
    rm -rf "$lint_home"
  fi
  return "$rc"
}

run_docs() {
  stage "antsibull-docs lint-collection-docs (the browser check of the built site runs in pytest)"
  bash scripts/docs.sh lint
}

case "${1:-all}" in
  ruff) run_ruff ;;
  sanity) run_sanity ;;
  matrix) run_matrix ;;
  lint) run_lint ;;
  docs) run_docs ;;
  unit) stage "pytest unit"; "${PYTEST[@]}" tests/unit ;;
  integration) stage "pytest integration"; "${PYTEST[@]}" tests/integration ;;
  molecule) stage "molecule"; "${PYTEST[@]}" tests/integration/test_molecule.py ;;
  xen) stage "Xen lab"; "${PYTEST[@]}" tests/xen ;;
  all)
    # Every stage runs even when an earlier one fails, so one CI run shows all problems.
    failed=()
    # The Xen lab's image (debootstrap, minutes, mostly waiting on the mirror and dpkg) is
    # built while the stages before pytest run; the lab fixture waits for it (build.sh locks).
    mkdir -p tests/output
    bash tests/xen/lab/build.sh > tests/output/xen-lab-build.log 2>&1 &
    # Likewise the Debian root filesystem of the login test's bootable template.
    python scripts/debian-rootfs.py > tests/output/debian-rootfs.log 2>&1 &
    run_ruff || failed+=(ruff)
    run_sanity || failed+=(sanity)
    run_matrix || failed+=(matrix)
    run_lint || failed+=(lint)
    run_docs || failed+=(docs)
    if ((${#failed[@]})); then
      echo "FAILED stages before pytest: ${failed[*]}" >&2
    fi
    # Two pytest runs side by side: the integration tests, which share the host's libvirtd
    # and run one at a time, and meanwhile the unit tests, then the Xen lab (a VM of its own).
    # (Not pytest-xdist's loadgroup: with pytest 9 it no longer keeps a group on one worker.)
    stage "pytest: unit tests then the Xen lab, beside the integration tests"
    side_log=tests/output/pytest-unit-xen.log
    LCFG_XEN_LAB=1 "${PYTEST[@]}" tests/unit tests/xen --durations=15 >"$side_log" 2>&1 &
    side=$!
    rc=0
    "${PYTEST[@]}" tests/integration --durations=30 2>&1 | tee tests/output/pytest-integration.log || rc=$?
    ((rc == 0)) || failed+=(pytest-integration)
    wait "$side" || failed+=(pytest-unit-xen)
    stage "pytest: unit tests and the Xen lab ($side_log)"
    cat "$side_log"
    printf '\n==== summaries\nintegration: %s\nunit + Xen lab: %s\n' \
      "$(grep -E '(passed|failed|error).* in [0-9.]+s' tests/output/pytest-integration.log | tail -1)" \
      "$(grep -E '(passed|failed|error).* in [0-9.]+s' "$side_log" | tail -1)"
    ((${#failed[@]} == 0))
    ;;
  *) echo "usage: $0 all|ruff|sanity|matrix|lint|docs|unit|integration|molecule|xen" >&2; exit 2 ;;
esac
