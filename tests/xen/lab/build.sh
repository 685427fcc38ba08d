#!/usr/bin/env bash
# Build (or reuse) the Xen lab: a Debian dom0 disk image with Xen's tools,
# libvirt's libxl driver and python3-libvirt, the Xen hypervisor and the dom0
# kernel/initrd to boot it under QEMU, an SSH key for the tests, and a tiny
# busybox initramfs for PV test guests.
#
# Everything is made without mounting anything: debootstrap into a directory,
# then `mkfs.ext4 -d`. The Debian mirror is read from this machine's apt
# sources at run time; it is never written into the repository.
#
# The result lives in a cache directory outside the repository, keyed by the
# package versions apt offers (apt-cache policy) and this script's own hash, so
# a second run with nothing changed only prints the path.
#
# Usage: tests/xen/lab/build.sh            -> prints the lab directory on stdout
# Environment:
#   LCFG_XEN_LAB_CACHE   cache root (default /var/cache/lcfg-xen-lab)
#   LCFG_XEN_LAB_MIRROR  Debian mirror URL (default: from /etc/apt/sources*)
#   LCFG_XEN_LAB_SUITE   Debian suite (default: this machine's VERSION_CODENAME)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE_ROOT="${LCFG_XEN_LAB_CACHE:-/var/cache/lcfg-xen-lab}"
XEN_VERSION=4.17
IMAGE_SIZE=3G

# Packages of the dom0 image. debootstrap installs no Recommends and does not
# resolve virtual packages (polkitd needs logind: libpam-systemd), so
# everything needed at run time is listed.
DOM0_PACKAGES=(
  systemd-sysv libpam-systemd udev kmod dbus procps iproute2 bridge-utils iptables dnsmasq-base
  linux-image-amd64 initramfs-tools
  "xen-hypervisor-${XEN_VERSION}-amd64" "xen-utils-${XEN_VERSION}" xen-utils-common xenstore-utils
  xen-system-amd64 qemu-utils
  # dom0's QEMU disk backend (qdisk): libxl starts /usr/libexec/xen-qemu-system-i386 for a
  # PV guest's file-backed (raw or qcow2) disks. xen-utils only recommends it.
  qemu-system-xen
  libvirt-daemon-system libvirt-daemon-driver-xen libvirt-clients
  python3 python3-libvirt python3-lxml python3-apt
  openssh-server
  # The hypervisor role writes Xen's GRUB settings and runs update-grub; the lab
  # boots Xen directly from QEMU, but update-grub must work.
  grub2-common grub-pc-bin
)
# The Xen packages of the hypervisor role (hypervisor_packages_xen) are in the image too (the lab has
# no network for apt): read from the role's defaults so the two lists cannot drift.
role_xen_packages() {
  awk '/^hypervisor_packages_xen:/ {inside = 1; next}
       /^[^ #]/ {inside = 0}
       inside && $1 == "-" {gsub(/["\047]/, "", $2); print $2}' "$HERE/../../../roles/hypervisor/defaults/main.yml"
}
mapfile -t ROLE_PACKAGES < <(role_xen_packages)
# a list the parse cannot read (say, a flow-style one) must not leave the lab short
((${#ROLE_PACKAGES[@]} >= 5)) || { echo "build.sh: cannot read hypervisor_packages_xen from the role's defaults" >&2; exit 1; }
mapfile -t DOM0_PACKAGES < <(printf '%s\n' "${DOM0_PACKAGES[@]}" "${ROLE_PACKAGES[@]}" | sort -u)
# Host packages whose versions also go into the image (the guest initramfs).
HOST_PACKAGES=(busybox-static debootstrap e2fsprogs)

log() { printf '[xen-lab build] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

suite() {
  if [[ -n ${LCFG_XEN_LAB_SUITE:-} ]]; then echo "$LCFG_XEN_LAB_SUITE"; return; fi
  # shellcheck disable=SC1091
  (. /etc/os-release && echo "$VERSION_CODENAME")
}

# The first mirror of this machine's apt sources that carries the release suite
# itself (not -security/-updates): deb822 files first, then one-line sources.
mirror() {
  if [[ -n ${LCFG_XEN_LAB_MIRROR:-} ]]; then echo "$LCFG_XEN_LAB_MIRROR"; return; fi
  local want="$1" file
  for file in /etc/apt/sources.list.d/*.sources; do
    [[ -f $file ]] || continue
    # Stanzas are separated by blank lines; keep URIs of stanzas whose Suites hold $want.
    awk -v want="$want" '
      BEGIN { RS=""; FS="\n" }
      {
        uris=""; ok=0; deb=0
        for (i = 1; i <= NF; i++) {
          line = $i
          if (line ~ /^[ \t]*#/) continue
          if (tolower(line) ~ /^types:/ && line ~ /(^|[ \t:])deb([ \t]|$)/) deb=1
          if (tolower(line) ~ /^uris:/) { sub(/^[^:]*:[ \t]*/, "", line); uris=line }
          if (tolower(line) ~ /^suites:/) {
            sub(/^[^:]*:[ \t]*/, "", line); n=split(line, s, /[ \t]+/)
            for (j = 1; j <= n; j++) if (s[j] == want) ok=1
          }
        }
        if (deb && ok && uris != "") { split(uris, u, /[ \t]+/); print u[1]; exit }
      }' "$file"
  done | head -n1 | grep . && return
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
    | awk -v want="$want" '$1 == "deb" {
        i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
        if ($(i + 1) == want) { print $i; exit } }' \
    | head -n1 | grep . && return
  die "no apt source for suite '$want' found in /etc/apt/sources.list{,.d}; set LCFG_XEN_LAB_MIRROR"
}

cache_key() {
  {
    sha256sum "$HERE/build.sh" | cut -d' ' -f1
    echo "suite=$1 mirror-hash=$(printf '%s' "$2" | sha256sum | cut -d' ' -f1) size=$IMAGE_SIZE"
    # candidates only: the Installed: lines change with what the host itself installs
    LC_ALL=C apt-cache policy "${DOM0_PACKAGES[@]}" | grep -E '^[^ ]|Candidate:'
    dpkg-query -W "${HOST_PACKAGES[@]}"
  } | sha256sum | cut -c1-16
}

# The kernel modules named, with everything they depend on (modules.dep), as paths
# relative to /lib/modules/KVER, dependencies first. Built-in modules are skipped.
module_closure() {
  local moddir="$1"; shift
  local -A seen=()
  local order=()
  visit() {
    local name="$1" line path dep
    line="$(grep -E "(^|/)${name}\.ko(\.[a-z]+)?:" "$moddir/modules.dep" | head -n1)" || true
    [[ -n $line ]] || return 0
    path="${line%%:*}"
    [[ -n ${seen[$path]:-} ]] && return 0
    seen[$path]=1
    for dep in ${line#*:}; do
      dep="${dep##*/}"; dep="${dep%%.ko*}"
      visit "$dep"
    done
    order+=("$path")
  }
  local mod
  for mod in "$@"; do visit "$mod"; done
  printf '%s\n' "${order[@]}"
}

# A busybox initramfs for PV guests: busybox from the host's busybox-static, the Xen
# front-end modules and ext4 (with their dependencies) of the dom0 kernel, and an /init
# that reports and idles. Optional settings on the guest's kernel command line:
#   lcfglab.disk=DEV       mount DEV (ext4, read-only) on /mnt and print its LCFG files
#   lcfglab.ip=A.B.C.D/N   give eth0 that address ...
#   lcfglab.peer=A.B.C.D   ... and ping that address every few seconds, so dom0 learns the
#                          guest's address in its neighbour (ARP) table
build_guest_initrd() {
  local rootfs="$1" out="$2" kver="$3" dir moddir path n=0
  dir="$(mktemp -d)"
  moddir="$rootfs/lib/modules/$kver"
  mkdir -p "$dir"/{bin,dev,proc,sys,mnt,lib/modules}
  cp /bin/busybox "$dir/bin/busybox"
  while read -r path; do
    [[ -n $path ]] || continue
    n=$((n + 1))
    # Numbered so that /init's glob loads dependencies first; compressed modules are
    # decompressed (busybox insmod reads plain .ko files).
    case "$path" in
      *.ko.xz) xz -dc "$moddir/$path" > "$dir/lib/modules/$(printf %02d "$n")-$(basename "${path%.xz}")" ;;
      *.ko.zst) zstd -qdc "$moddir/$path" > "$dir/lib/modules/$(printf %02d "$n")-$(basename "${path%.zst}")" ;;
      *) cp "$moddir/$path" "$dir/lib/modules/$(printf %02d "$n")-$(basename "$path")" ;;
    esac
  done < <(module_closure "$moddir" xen-netfront xen-blkfront crc32c_generic ext4)
  cat > "$dir/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
# A shutdown request from Xen makes the kernel run /sbin/poweroff, which signals PID 1.
mkdir -p /sbin && ln -s /bin/busybox /sbin/poweroff
trap 'poweroff -f' USR2 TERM
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
for m in /lib/modules/*.ko; do [ -f "$m" ] && insmod "$m" 2>/dev/null; done
echo "lcfg-xen-lab guest: up, $(grep -c ^processor /proc/cpuinfo) cpu(s)"
arg() { for word in $(cat /proc/cmdline); do case "$word" in "$1"=*) echo "${word#*=}" ;; esac; done; }
disk="$(arg lcfglab.disk)"
if [ -n "$disk" ]; then
  i=0
  while [ ! -b "$disk" ] && [ $i -lt 120 ]; do sleep 1; i=$((i + 1)); done
  if mount -t ext4 -o ro "$disk" /mnt; then
    echo "lcfg-xen-lab disk: mounted $(grep ' /mnt ' /proc/mounts)"
    echo "lcfg-xen-lab disk: profile_url=$(cat /mnt/etc/lcfg/profile_url)"
    echo "lcfg-xen-lab disk: hostname=$(cat /mnt/etc/hostname)"
  else
    echo "lcfg-xen-lab disk: cannot mount $disk"
    ls -l /dev/xvd* 2>&1
  fi
fi
address="$(arg lcfglab.ip)"
peer="$(arg lcfglab.peer)"
if [ -n "$address" ]; then
  ip link set eth0 up && ip addr add "$address" dev eth0 && echo "lcfg-xen-lab net: eth0 $address"
fi
# Xen hot-adds VCPUs as "present"; onlining them is userspace's job (udev on a full system).
while true; do
  for f in /sys/devices/system/cpu/cpu*/online; do
    [ -f "$f" ] || continue # no match: a guest without hot-pluggable VCPUs
    [ "$(cat "$f")" = 0 ] && echo 1 > "$f" && echo "lcfg-xen-lab guest: onlined ${f%/online}"
  done
  [ -n "$peer" ] && ping -c 1 -W 1 "$peer" >/dev/null 2>&1
  sleep 2
done
EOF
  chmod 0755 "$dir/init"
  (cd "$dir" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -9 > "$out"
  rm -rf "$dir"
}

configure_rootfs() {
  local rootfs="$1" pubkey="$2"
  echo xenlab > "$rootfs/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\txenlab\n' > "$rootfs/etc/hosts"
  printf '/dev/vda\t/\text4\terrors=remount-ro\t0\t1\n' > "$rootfs/etc/fstab"
  # QEMU user-mode networking hands out an address by DHCP.
  mkdir -p "$rootfs/etc/systemd/network"
  cat > "$rootfs/etc/systemd/network/20-lab-dhcp.network" <<'EOF'
[Match]
Name=en* eth*

[Network]
DHCP=ipv4
EOF
  chroot "$rootfs" systemctl enable systemd-networkd.service >/dev/null 2>&1
  chroot "$rootfs" systemctl enable ssh.service xen.service libvirtd.service >/dev/null 2>&1 || true
  chroot "$rootfs" systemctl enable serial-getty@hvc0.service >/dev/null 2>&1 || true
  # xenconsoled keeps every guest's console in /var/log/xen/console/guest-<name>.log,
  # so tests can see a guest's kernel and init run.
  printf '\n# lcfg.xen lab: log guest consoles\nXENCONSOLED_ARGS="--log=guest --log-dir=/var/log/xen/console"\n' \
    >> "$rootfs/etc/default/xen"
  mkdir -p "$rootfs/var/log/xen/console" "$rootfs/boot/grub"
  # Root logs in by key only; the console (hvc0) has no password for debugging.
  install -d -m 0700 "$rootfs/root/.ssh"
  install -m 0600 "$pubkey" "$rootfs/root/.ssh/authorized_keys"
  chroot "$rootfs" passwd -d root >/dev/null
  mkdir -p "$rootfs/etc/ssh/sshd_config.d"
  printf 'PermitRootLogin prohibit-password\nUseDNS no\n' > "$rootfs/etc/ssh/sshd_config.d/lcfg-xen-lab.conf"
  # The lab has no name service; keep apt and friends from waiting on it.
  : > "$rootfs/etc/resolv.conf"
  rm -f "$rootfs/etc/machine-id" && : > "$rootfs/etc/machine-id"
}

main() {
  local suite mirror key lab
  suite="$(suite)"
  mirror="$(mirror "$suite")"
  key="$(cache_key "$suite" "$mirror")"
  lab="$CACHE_ROOT/$key"
  if [[ -f $lab/complete ]]; then
    log "cached lab $lab is current (key $key)"
    echo "$lab"
    return
  fi
  mkdir -p "$CACHE_ROOT"
  exec 9>"$CACHE_ROOT/.lock"
  flock 9
  if [[ -f $lab/complete ]]; then echo "$lab"; return; fi

  local work="$CACHE_ROOT/.build-$key" start=$SECONDS
  rm -rf "$work"
  mkdir -p "$work"
  trap 'rm -rf "$work"' EXIT
  log "building lab $key from suite $suite (this takes a few minutes)"

  ssh-keygen -q -t ed25519 -N '' -C lcfg-xen-lab -f "$work/id_ed25519"
  local include
  include="$(IFS=,; echo "${DOM0_PACKAGES[*]}")"
  if ! debootstrap --variant=minbase --include="$include" "$suite" "$work/rootfs" "$mirror" \
      > "$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log" >&2
    tail -n 30 "$work/rootfs/debootstrap/debootstrap.log" >&2 2>/dev/null || true
    die "debootstrap failed"
  fi
  log "debootstrap done after $((SECONDS - start)) s"
  configure_rootfs "$work/rootfs" "$work/id_ed25519.pub"

  local kver xengz
  kver="$(find "$work/rootfs/boot" -maxdepth 1 -name 'vmlinuz-*' -printf '%f\n' | sort -V | tail -n1)"
  kver="${kver#vmlinuz-}"
  xengz="$(find "$work/rootfs/boot" -maxdepth 1 -name "xen-$XEN_VERSION-amd64.gz" | head -n1)"
  [[ -n $xengz ]] || die "the image has no /boot/xen-$XEN_VERSION-amd64.gz"
  gzip -dc "$xengz" > "$work/xen"
  cp "$work/rootfs/boot/vmlinuz-$kver" "$work/vmlinuz"
  cp "$work/rootfs/boot/initrd.img-$kver" "$work/initrd.img"
  # PV guests boot the dom0 kernel with the busybox initramfs, both inside dom0.
  mkdir -p "$work/rootfs/var/lib/lcfg-xen-lab"
  cp "$work/vmlinuz" "$work/rootfs/var/lib/lcfg-xen-lab/guest-vmlinuz"
  build_guest_initrd "$work/rootfs" "$work/rootfs/var/lib/lcfg-xen-lab/guest-initrd.gz" "$kver"
  chroot "$work/rootfs" dpkg-query -W > "$work/versions.txt"
  echo "$kver" > "$work/kernel-version"
  rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*_Packages

  truncate -s "$IMAGE_SIZE" "$work/dom0.img"
  mkfs.ext4 -q -F -L dom0 -d "$work/rootfs" "$work/dom0.img"
  rm -rf "$work/rootfs"
  date -u +%FT%TZ > "$work/complete"
  echo "$((SECONDS - start))" > "$work/build-seconds"
  # Only the current lab is kept.
  find "$CACHE_ROOT" -mindepth 1 -maxdepth 1 -type d ! -name "$key" ! -name ".build-$key" -exec rm -rf {} +
  mv "$work" "$lab"
  trap - EXIT
  log "built $lab in $((SECONDS - start)) s"
  echo "$lab"
}

# One build at a time: `make test` starts a build in the background while its first stages
# run, and the lab fixture's own call then waits here for it and finds the cache current.
mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.lock"
flock 9
main "$@"
