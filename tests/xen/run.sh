#!/usr/bin/env bash
# Entry point of `make test-xen`: build the Xen lab (cached), then run tests/xen with one
# boot of Xen + dom0 under QEMU for all tests. Prints each stage's duration; the lab's own
# stages (build/cache check, boot, tests, shutdown) are also in tests/output/xen-lab-timings.json.
# Extra arguments go to pytest (e.g. -k role).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-$ROOT/.venv/bin/python}"

stage() { printf '[test-xen] %-34s %4d s\n' "$1" "$2" >&2; }

start=$SECONDS
bash tests/xen/lab/build.sh >/dev/null
stage "build (or cache check)" $((SECONDS - start))

start=$SECONDS
rc=0
LCFG_XEN_LAB=1 "$PY" -m pytest -p no:cacheprovider -m xen tests/xen "$@" || rc=$?
stage "boot + tests + shutdown (pytest)" $((SECONDS - start))
exit "$rc"
