#!/usr/bin/env bash
# The ansible-core matrix's second row: ansible-test sanity and the unit tests under the
# newest ansible-core on Python 3.13, in .venv-newest (requirements-newest.txt, built by
# scripts/bootstrap.sh). The first row (ansible-core 2.19, Python 3.11, .venv) is the
# sanity stage and the pytest run of scripts/test.sh.
# Usage: scripts/matrix.sh            sanity, then unit tests
#        scripts/matrix.sh sanity|unit
#        scripts/matrix.sh --find-python   print the Python 3.13 interpreter (exit 1: none)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv-newest"
WANT=3.13

# A working Python 3.13: $LCFG_XEN_PYTHON313, pyenv's versions, then python3.13 on PATH.
# Each candidate must run and report 3.13 (a pyenv shim without that version installed
# does not); pyenv's versioned binaries come before the shims for that reason.
find_python() {
  local c
  for c in ${LCFG_XEN_PYTHON313:+"$LCFG_XEN_PYTHON313"} \
    "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$WANT"*/bin/python"$WANT" \
    /usr/bin/python"$WANT" /usr/local/bin/python"$WANT" "$(command -v python"$WANT" 2>/dev/null || true)"; do
    [[ -n $c && -x $c ]] || continue
    if [[ "$("$c" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" == "$WANT" ]]; then
      echo "$c"
      return 0
    fi
  done
  return 1
}

fail() {
  echo "matrix: $*" >&2
  exit 1
}

if [[ ${1:-} == --find-python ]]; then
  find_python
  exit
fi

if ! find_python >/dev/null; then
  fail "no Python $WANT on this machine, so the newest ansible-core cannot be tested." \
    "Install it (e.g. 'pyenv install $WANT', or set LCFG_XEN_PYTHON313=/path/to/python$WANT)," \
    "then run 'make bootstrap'. This stage fails rather than skips."
fi
[[ -x $VENV/bin/ansible-test ]] || fail "$VENV is missing: run 'make bootstrap' (scripts/bootstrap.sh builds it)"
want_core="$(sed -n 's/^ansible-core==//p' requirements-newest.txt)"
have_core="$("$VENV/bin/python" -c 'from ansible.release import __version__; print(__version__)')"
[[ $have_core == "$want_core" ]] || fail "$VENV has ansible-core $have_core, requirements-newest.txt pins $want_core: run 'make bootstrap'"

export PATH="$VENV/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$ROOT/.collections"
export PYTHONPATH="$ROOT/.collections${PYTHONPATH:+:$PYTHONPATH}"
export ANSIBLE_NOCOLOR=1

run_sanity() {
  printf '\n==== ansible-test sanity: ansible-core %s, Python %s (%s)\n' "$have_core" "$WANT" "$(date -u +%H:%M:%S)"
  SANITY_VENV="$VENV" SANITY_PYTHON="$WANT" SANITY_DIR=build/newest bash scripts/sanity.sh
}

run_unit() {
  printf '\n==== pytest unit: ansible-core %s, Python %s (%s)\n' "$have_core" "$WANT" "$(date -u +%H:%M:%S)"
  "$VENV/bin/python" -m pytest -p no:cacheprovider -q tests/unit
}

case "${1:-all}" in
  sanity) run_sanity ;;
  unit) run_unit ;;
  all)
    rc=0
    run_sanity || rc=1
    run_unit || rc=1
    exit "$rc"
    ;;
  *) echo "usage: $0 [all|sanity|unit|--find-python]" >&2; exit 2 ;;
esac
