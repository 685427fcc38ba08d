# shellcheck shell=bash
# Sourced by the scripts that run the checkout's tools: the repository root as ROOT (and the
# working directory), its .venv first on PATH, and the collection found through .collections
# (scripts/bootstrap.sh links it there).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
export PATH="$ROOT/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$ROOT/.collections"
export PYTHONPATH="$ROOT/.collections${PYTHONPATH:+:$PYTHONPATH}"
