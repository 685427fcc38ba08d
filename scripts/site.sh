#!/usr/bin/env bash
# The main job (make site): the site playbook over the example LCFG inventory against
# the local libvirtd with QEMU/KVM. Runs playbooks/site.yml (hypervisors, networks,
# guests -- building the template images the guests clone when missing, with xen_disk
# state=template -- and the summary). Run it twice: the second run reports changed=0.
# Usage: scripts/site.sh [extra ansible-playbook arguments, e.g. --check --diff]
# LCFG_XEN_LOGIN=1 (make site LOGIN=1) adds the login demo (inventory-login/: guests cloned
# from a bootable Debian template, built once and cached) and -e site_login=true: the play
# then logs in to those guests over SSH and checks host name, memory, VCPUs and profile URL.
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
# The example site's container (demo-ct1 of lcfg/profiles/demo-single, and the tests' renamed
# copies of it) clones this root filesystem; built once, never replaced.
"$(dirname "${BASH_SOURCE[0]}")/container-template.sh" /var/lib/lcfg-xen/templates/container_busybox.img

ARGS=(-i "$INVENTORY")
if [[ ${LCFG_XEN_LOGIN:-} == 1 ]]; then
  ARGS+=(-i "${LCFG_XEN_LOGIN_INVENTORY:-inventory-login/login.lcfg.yml}" -e site_login=true)
fi

log "ansible-playbook ${ARGS[*]} playbooks/site.yml $*"
exec ansible-playbook "${ARGS[@]}" playbooks/site.yml "$@"
