#!/usr/bin/env bash
# Build a container template: a raw image holding an ext4 root filesystem (no partition
# table: libvirt's LXC driver loop-mounts the file at /) with Debian's busybox-static and a
# /sbin/init that keeps the container running. Built with mkfs.ext4 -d from a directory
# tree, so nothing is mounted on the host. Never replaces an existing file.
# Usage: scripts/container-template.sh PATH [SIZE_MB]
set -euo pipefail
path="${1:?usage: $0 PATH [SIZE_MB]}"
size_mb="${2:-64}"
if [[ -e $path ]]; then
  echo "[container-template] $path exists: left as it is" >&2
  exit 0
fi
busybox="$(command -v busybox || true)"
# ldd fails on a static binary: the container has no libraries to load it with
if [[ -z $busybox ]] || ldd "$busybox" >/dev/null 2>&1; then
  echo "[container-template] needs a statically linked busybox (Debian's busybox-static)" >&2
  exit 1
fi
tree="$(mktemp -d)"
trap 'rm -rf "$tree"' EXIT
install -d "$tree"/{bin,sbin,etc,proc,sys,dev,tmp,root,run,var/log}
install -m 0755 "$busybox" "$tree/bin/busybox"
for applet in sh ash ls cat ip ifconfig ps sleep hostname mount umount ping free nproc top; do
  ln -s busybox "$tree/bin/$applet"
done
cat >"$tree/sbin/init" <<'INIT'
#!/bin/sh
# A container's first process: libvirt has set its addresses already; stay up until stopped.
trap 'exit 0' TERM INT
while :; do sleep 3600 & wait $!; done
INIT
chmod 0755 "$tree/sbin/init"
echo "root:x:0:0:root:/root:/bin/sh" >"$tree/etc/passwd"
echo "root:x:0:" >"$tree/etc/group"
install -d -m 0700 "$(dirname "$path")"
tmp="$path.tmp.$$"
truncate -s "${size_mb}M" "$tmp"
mkfs.ext4 -q -F -L rootfs -d "$tree" "$tmp"
mv -n "$tmp" "$path"  # never over a file that appeared meanwhile
rm -f "$tmp"
echo "[container-template] built $path" >&2
