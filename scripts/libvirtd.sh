#!/usr/bin/env bash
# Start or stop libvirtd without systemd (this machine and CI have none).
set -euo pipefail
SOCK=/run/libvirt/libvirt-sock

# A killed daemon can linger as a zombie until PID 1 reaps it (containers without a real
# init): count only live processes.
alive() {
  pgrep -x --runstates D,I,R,S,T,t "$1" >/dev/null
}

running() {
  [[ -S $SOCK ]] && virsh -c qemu:///system version >/dev/null 2>&1
}

case "${1:-start}" in
  start)
    if running; then exit 0; fi
    mkdir -p /run/libvirt /var/lib/libvirt/images /var/log/libvirt
    alive virtlogd || virtlogd -d
    alive libvirtd || libvirtd -d
    # After a crash libvirtd reconnects to the guests that kept running first: that can
    # take tens of seconds on a busy machine.
    for _ in $(seq 1 600); do
      running && exit 0
      sleep 0.2
    done
    echo "libvirtd did not answer within 120 s; see /var/log/libvirt" >&2
    exit 1
    ;;
  stop)
    pkill -x libvirtd || true
    ;;
  restart)
    pkill -x libvirtd || true
    for _ in $(seq 1 50); do alive libvirtd || break; sleep 0.2; done
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
