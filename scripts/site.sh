#!/usr/bin/env bash
# The main job (make site): the site playbook over the example LCFG inventory against
# the local libvirtd with QEMU/KVM. Builds the template images the inventory names
# (when missing), runs playbooks/site.yml (hypervisors, networks, guests, summary) and
# prints the summary. Run it twice: the second run reports changed=0.
# Usage: scripts/site.sh [extra ansible-playbook arguments, e.g. --check --diff]
set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
export ANSIBLE_INVENTORY_UNPARSED_WARNING=false ANSIBLE_LOCALHOST_WARNING=false
# Multi-line results (the summary table) print as YAML blocks, not JSON strings.
export ANSIBLE_CALLBACK_RESULT_FORMAT="${ANSIBLE_CALLBACK_RESULT_FORMAT:-yaml}"
# libguestfs tries KVM first for its appliance; under nested virtualisation that attempt
# can spin without end (seen on the test machines), so our own runs use TCG unless
# LIBGUESTFS_BACKEND_SETTINGS is set (set it empty to let libguestfs try KVM).
export LIBGUESTFS_BACKEND_SETTINGS="${LIBGUESTFS_BACKEND_SETTINGS-force_tcg}"
INVENTORY="${LCFG_XEN_INVENTORY:-inventory/site.lcfg.yml}"

log() { printf '[site] %s\n' "$*" >&2; }

scripts/libvirtd.sh start

# Template images named by the inventory (xen.template_<guest>) that do not exist yet.
# Profiles are untrusted: only paths inside the storage directories are built; any other
# template is left to the admin (the guest role then fails naming it).
mapfile -t templates < <(ansible-inventory -i "$INVENTORY" --list | python3 -c '
import json, sys
from ansible_collections.lcfg.xen.plugins.module_utils.common.confinement import DEFAULT_STORAGE_DIRS, real_inside
hostvars = json.load(sys.stdin).get("_meta", {}).get("hostvars", {})
def plain(value):  # profile values are untrusted: ansible-inventory shows them wrapped
    return value.get("__ansible_unsafe") if isinstance(value, dict) else value
paths = {plain(hv["xen_domain"]["template"]) for hv in hostvars.values()
         if isinstance(hv.get("xen_domain"), dict) and hv["xen_domain"].get("template")}
for path in sorted(paths):
    if real_inside(path, DEFAULT_STORAGE_DIRS):
        print(path)
    else:
        print(f"[site] not building template {path}: outside the storage directories", file=sys.stderr)')
for template in "${templates[@]}"; do
  [[ -n $template ]] || continue
  if [[ ! -e $template ]]; then
    log "building template image $template"
    install -d -m 0700 "$(dirname "$template")"
    .venv/bin/python scripts/make-template.py "$template" --size-gb 1
  fi
done

log "ansible-playbook -i $INVENTORY playbooks/site.yml $*"
exec ansible-playbook -i "$INVENTORY" playbooks/site.yml "$@"
