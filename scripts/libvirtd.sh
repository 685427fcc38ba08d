#!/usr/bin/env bash
# Start or stop libvirtd without systemd (this machine and CI have none).
set -euo pipefail
SOCK=/run/libvirt/libvirt-sock

running() {
  [[ -S $SOCK ]] && virsh -c qemu:///system version >/dev/null 2>&1
}

case "${1:-start}" in
  start)
    if running; then exit 0; fi
    mkdir -p /run/libvirt /var/lib/libvirt/images /var/log/libvirt
    pgrep -x virtlogd >/dev/null || virtlogd -d
    pgrep -x libvirtd >/dev/null || libvirtd -d
    for _ in $(seq 1 100); do
      running && exit 0
      sleep 0.2
    done
    echo "libvirtd did not come up; see /var/log/libvirt" >&2
    exit 1
    ;;
  stop)
    pkill -x libvirtd || true
    ;;
  restart)
    pkill -x libvirtd || true
    for _ in $(seq 1 50); do pgrep -x libvirtd >/dev/null || break; sleep 0.2; done
    rm -f /run/libvirtd.pid
    exec "$0" start
    ;;
  status)
    running
    ;;
  *)
    echo "usage: $0 start|stop|restart|status" >&2
    exit 2
    ;;
esac
