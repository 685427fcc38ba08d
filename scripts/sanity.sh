#!/usr/bin/env bash
# ansible-test sanity on a copy of the tree at build/ansible_collections/lcfg/xen
# (ansible-test refuses symlinked paths and lists files through git).
# Usage: scripts/sanity.sh [ansible-test sanity args, e.g. --test pylint plugins/modules/x.py]
# SANITY_VENV, SANITY_PYTHON and SANITY_DIR choose another venv, Python and copy (scripts/matrix.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SANITY_VENV:-$ROOT/.venv}"
DEST="$ROOT/${SANITY_DIR:-build}/ansible_collections/lcfg/xen"
mkdir -p "$DEST"
# Start from an empty copy (keeping git metadata and ansible-test's output cache), so
# files deleted from the work tree do not linger.
find "$DEST" -mindepth 1 -maxdepth 1 ! -name .git ! -name tests -exec rm -rf {} +
find "$DEST/tests" -mindepth 1 -maxdepth 1 ! -name output -exec rm -rf {} + 2>/dev/null || true
cd "$ROOT"
# Tracked files plus new ones not ignored: what a commit would contain.
git ls-files -z --cached --others --exclude-standard \
  | rsync -a --delete --from0 --files-from=- ./ "$DEST/"
cd "$DEST"
if [[ ! -d .git ]]; then git init -q && git config user.email ci@localhost && git config user.name ci; fi
git add -A >/dev/null && git commit -qm snapshot --allow-empty >/dev/null
# ansible-test --venv finds pythonX.Y on PATH: the venv's own first.
export PATH="$VENV/bin:$PATH"
exec "$VENV/bin/ansible-test" sanity --venv --python "${SANITY_PYTHON:-3.11}" --color no "$@"
