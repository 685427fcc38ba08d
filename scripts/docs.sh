#!/usr/bin/env bash
# Build the collection's HTML docs site with antsibull-docs (make docs):
#   docs/*.md -> docs/docsite/rst/*.rst (scripts/docs-rst.py), then `antsibull-docs sphinx-init`
#   into build/docs and its generated build.sh (Sphinx with -W: any warning fails the build).
# Output: build/docs/build/html/index.html. Usage: scripts/docs.sh [build|lint]
#   lint: only generate the guides' RST and run `antsibull-docs lint-collection-docs`.
# The build is offline: no intersphinx inventories are fetched, and the few references into
# ansible-core's own docs that every generated plugin page makes are listed as known misses.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$ROOT/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="${ANSIBLE_COLLECTIONS_PATH:-$ROOT/.collections}"
DEST="$ROOT/build/docs"

python3 scripts/docs-rst.py
if [[ "${1:-build}" == lint ]]; then
  exec antsibull-docs lint-collection-docs --plugin-docs "$ROOT"
fi

# antsibull-docs wants the destination owned by us and writable by nobody else.
install -d -m 0755 "$ROOT/build"
rm -rf "$DEST"
install -d -m 0755 "$DEST"
antsibull-docs sphinx-init --use-current --dest-dir "$DEST" lcfg.xen >/dev/null
cat >>"$DEST/conf.py" <<'CONF'

# Added by scripts/docs.sh: build offline, and accept the references into ansible-core's
# docs (resolved through intersphinx on the Ansible docsite) as known misses.
intersphinx_mapping = {}
nitpick_ignore = [
    ("std:ref", "common_return_values"),
    ("std:ref", "ansible_configuration_settings"),
]
nitpick_ignore_regex = [("std:envvar", r"ANSIBLE_.*")]
CONF
bash "$DEST/build.sh"
echo "docs: $DEST/build/html/index.html"
