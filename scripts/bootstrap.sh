#!/usr/bin/env bash
# Prepare this machine for the collection: Debian packages, the virtualenv,
# the collection on an ansible_collections path, and a running libvirtd.
# Safe to run again: every step checks before it acts.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

APT_PACKAGES=(
  libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-daemon-driver-lxc libvirt-clients libvirt-dev
  pkg-config gcc python3-venv python3-dev python3-guestfs libguestfs-tools
  linux-image-amd64 qemu-system-x86 qemu-utils dnsmasq-base iptables nftables
  bridge-utils iproute2 busybox-static cpio debootstrap e2fsprogs parted fdisk
  git rsync openssh-client openssh-server shellcheck
  ovmf ipxe-qemu pxelinux syslinux-common xorriso
  chromium pandoc
  # the ESX tests build VMware's simulator (govmomi's vcsim) from Debian's Go sources
  golang-go golang-github-vmware-govmomi-dev
)

log() { printf '[bootstrap] %s\n' "$*" >&2; }

install_packages() {
  local missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

create_venv() {
  local stamp=.venv/.requirements.sha256
  local want
  want="$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)"
  if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
    return
  fi
  log "creating virtualenv .venv"
  # Debian's interpreter with system site-packages: python3-guestfs comes from apt.
  [[ -x .venv/bin/python ]] || /usr/bin/python3 -m venv --system-site-packages .venv
  .venv/bin/python -m pip install -q --upgrade pip >.venv/pip.log 2>&1
  .venv/bin/python -m pip install -q -r requirements.txt -r requirements-dev.txt >>.venv/pip.log 2>&1 || { tail -30 .venv/pip.log >&2; exit 1; }
  echo "$want" > "$stamp"
}

create_venv_newest() {
  # The matrix's second venv (scripts/matrix.sh): the newest ansible-core on Python 3.13.
  # libvirt-python builds from source here (pkg-config, libvirt-dev, gcc above).
  local stamp=.venv-newest/.requirements.sha256 want py
  want="$(sha256sum requirements-newest.txt | cut -d' ' -f1)"
  if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
    return
  fi
  if ! py="$(scripts/matrix.sh --find-python)"; then
    log "no Python 3.13 found: .venv-newest not built, the matrix stage of make test will fail"
    return
  fi
  log "creating virtualenv .venv-newest ($py)"
  [[ -x .venv-newest/bin/python ]] || "$py" -m venv .venv-newest
  .venv-newest/bin/python -m pip install -q --upgrade pip >.venv-newest/pip.log 2>&1
  .venv-newest/bin/python -m pip install -q -r requirements-newest.txt >>.venv-newest/pip.log 2>&1 \
    || { tail -30 .venv-newest/pip.log >&2; exit 1; }
  echo "$want" > "$stamp"
}

link_collection() {
  # FQCN imports resolve through this path; ansible-test gets its own copy (scripts/sanity.sh).
  mkdir -p .collections/ansible_collections/lcfg
  ln -sfn "$ROOT" .collections/ansible_collections/lcfg/xen
}

fix_kvm_permissions() {
  # No udev here: give /dev/kvm the group and mode udev would, or libvirtd
  # re-probes QEMU on every define and KVM stays unusable.
  if [[ -e /dev/kvm ]]; then
    getent group kvm >/dev/null || groupadd -r kvm
    chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
  fi
}

start_libvirtd() {
  "$ROOT/scripts/libvirtd.sh" start
}

install_packages
create_venv
create_venv_newest
link_collection
fix_kvm_permissions
start_libvirtd
if [[ -x ../shared/tools/ansible-test-pip-bootstrap && ! -f .venv/.pip-bootstrap ]]; then
  ../shared/tools/ansible-test-pip-bootstrap .venv/bin/python && touch .venv/.pip-bootstrap
fi
if [[ -x ../shared/tools/ansible-test-pip-bootstrap && -x .venv-newest/bin/python && ! -f .venv-newest/.pip-bootstrap ]]; then
  ../shared/tools/ansible-test-pip-bootstrap .venv-newest/bin/python && touch .venv-newest/.pip-bootstrap
fi
log "ready"
