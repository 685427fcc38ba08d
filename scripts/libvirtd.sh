#!/usr/bin/env bash
# Start or stop libvirtd without systemd (this machine and CI have none).
set -euo pipefail
SOCK=/run/libvirt/libvirt-sock

# A killed daemon can linger as a zombie until PID 1 reaps it (containers without a real
# init): count only live processes.
alive() {
  pgrep -x --runstates D,I,R,S,T,t "$1" >/dev/null
}

# libvirt's LXC driver treats a cgroup v1 + v2 hybrid host whose v2 hierarchy offers a
# controller as "v2 available" and then fails every container start ("Unable to create
# directory /sys/fs/cgroup/unified"). Hosts without systemd (this machine, CI) leave such
# controllers (hugetlb here) unmounted in v1: mount each in v1, as systemd's hybrid mode does,
# so the v2 hierarchy offers none. Changes nothing on pure v1 or pure v2 hosts.
mount_v1_controllers() {
  local unified=/sys/fs/cgroup/unified controller controllers=()
  [[ -r $unified/cgroup.controllers ]] || return 0
  mountpoint -q /sys/fs/cgroup || return 0
  read -ra controllers <"$unified/cgroup.controllers" || true
  for controller in "${controllers[@]}"; do
    [[ -d /sys/fs/cgroup/$controller ]] && mountpoint -q "/sys/fs/cgroup/$controller" && continue
    mkdir -p "/sys/fs/cgroup/$controller"
    mount -t cgroup -o "$controller" cgroup "/sys/fs/cgroup/$controller" ||
      echo "warning: could not mount the $controller cgroup controller in v1: LXC containers may not start" >&2
  done
}

running() {
  [[ -S $SOCK ]] && virsh -c qemu:///system version >/dev/null 2>&1
}

case "${1:-start}" in
  start)
    # virtlogd writes the guests' serial console logs (<serial><log file=.../>, bounded by
    # /etc/libvirt/virtlogd.conf max_size/max_backups) and QEMU's own logs: it must run even
    # when libvirtd already does (a virtlogd that died leaves new guests unable to start).
    mkdir -p /run/libvirt /var/lib/libvirt/images /var/log/libvirt/qemu
    mount_v1_controllers
    alive virtlogd || virtlogd -d
    if grep -Eq '^[[:space:]]*stdio_handler[[:space:]]*=[[:space:]]*"file"' /etc/libvirt/qemu.conf 2>/dev/null; then
      echo "warning: /etc/libvirt/qemu.conf sets stdio_handler = \"file\": console logs are not bounded by virtlogd" >&2
    fi
    if running; then exit 0; fi
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
