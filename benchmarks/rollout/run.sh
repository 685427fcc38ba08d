#!/usr/bin/env bash
# Rollout benchmark (make bench-rollout): N guests (default 50) from an LCFG inventory -
# define with autostart, then start - with lcfg.xen's playbook, with the equivalent
# community.libvirt playbook (the ansible package, pinned, in its own venv under
# benchmarks/output/), and with a plain libvirt-python script (the floor). Each tool
# runs twice: the first run from nothing, then a no-change re-run. Prints wall times
# and ratios; writes benchmarks/output/rollout.json. Guests are named lcfgbench-NN and
# removed between tools and at the end.
# BENCH_START=0 measures define + autostart only (no N QEMU processes started), the
# step a busy or small machine can afford.
# BENCH_DOMAIN_TYPE=qemu|kvm|auto picks the guests' domain type (default qemu, for every tool).
# BENCH_REPEAT=R repeats everything R times and prints medians (default 1).
# BENCH_COMMUNITY_REPEAT=K runs community.libvirt in the first K repetitions only (default R):
# at 1,000 guests one community.libvirt run takes a quarter of an hour.
# BENCH_HYPERVISORS=H: H hypervisor profiles of N guests each, all on this machine's libvirtd
# (the many-hypervisors case of issue 14: H=20, N=50, BENCH_START=0). BENCH_FORKS: ansible's
# forks, the same for both tools (default 5, ansible's own default).
# Usage: [BENCH_START=0] [BENCH_DOMAIN_TYPE=...] [BENCH_REPEAT=R] [BENCH_HYPERVISORS=H]
#        benchmarks/rollout/run.sh [N]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/benchmarks/rollout"
OUT="$ROOT/benchmarks/output/rollout"
N="${1:-${BENCH_GUESTS:-50}}"
URI="${BENCH_URI:-qemu:///system}"
START="${BENCH_START:-1}"
# qemu (TCG) for every tool by default: this machine's nested KVM burns about 3 s of CPU
# per guest boot; auto lets lcfg.xen choose (kvm when /dev/kvm opens) and gives the
# other tools kvm.
DOMAIN_TYPE="${BENCH_DOMAIN_TYPE:-qemu}"
REPEAT="${BENCH_REPEAT:-1}"  # repetitions; the table shows medians
COMMUNITY_REPEAT="${BENCH_COMMUNITY_REPEAT:-$REPEAT}"
HYPERVISORS="${BENCH_HYPERVISORS:-1}"
export ANSIBLE_FORKS="${BENCH_FORKS:-5}"
if [[ $DOMAIN_TYPE == auto ]]; then OTHERS_TYPE=kvm; else OTHERS_TYPE=$DOMAIN_TYPE; fi
if [[ $START == 0 ]]; then START_VAR=false; FLOOR_START=(--no-start); WHAT="define + autostart"
else START_VAR=true; FLOOR_START=(); WHAT="define + autostart, then start"; fi
ANSIBLE_PIN="ansible==12.3.0"
BENCH_VENV="$ROOT/benchmarks/output/venv-ansible"
PY="$ROOT/.venv/bin/python"
cd "$ROOT"
mkdir -p "$OUT"
export ANSIBLE_COLLECTIONS_PATH="$ROOT/.collections"
export ANSIBLE_NOCOLOR=1 ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false
export ANSIBLE_CALLBACK_RESULT_FORMAT=yaml

log() { printf '[rollout %(%T)T] %s\n' -1 "$*" >&2; }

scripts/libvirtd.sh start
installed="$("$BENCH_VENV/bin/pip" show ansible 2>/dev/null || true)"
if [[ ! -x $BENCH_VENV/bin/ansible-playbook ]] || [[ $installed != *"Version: ${ANSIBLE_PIN#ansible==}"* ]]; then
  log "installing $ANSIBLE_PIN into $BENCH_VENV (community.libvirt ships with it)"
  python3 -m venv "$BENCH_VENV"
  "$BENCH_VENV/bin/pip" install -q "$ANSIBLE_PIN"
fi

"$PY" "$HERE/make_inventory.py" "$OUT/inventory" --guests "$N" --hypervisors "$HYPERVISORS" --uri "$URI" \
  --domain-type "$DOMAIN_TYPE"
INV="$OUT/inventory/bench.lcfg.yml"
# The specs, for the floor script (the inventory is parsed outside its timing), and the
# hypervisors' names as a static inventory (ansible-core's share, without the LCFG inventory).
"$ROOT/.venv/bin/ansible-inventory" -i "$INV" --list | "$PY" -c '
import json, sys
listing = json.load(sys.stdin)
hv = listing["_meta"]["hostvars"]
def plain(v):
    if isinstance(v, dict):
        return v.get("__ansible_unsafe") if set(v) == {"__ansible_unsafe"} else {k: plain(x) for k, x in v.items()}
    return [plain(x) for x in v] if isinstance(v, list) else v
hypervisors = {name: {"ansible_connection": "local"} for name in listing["xen_hypervisors"]["hosts"]}
json.dump({"xen_hypervisors": {"hosts": hypervisors}}, open(sys.argv[1], "w"))
print(json.dumps(sorted((plain(h["xen_domain"]) for h in hv.values() if "xen_domain" in h), key=lambda s: s["name"])))
' "$OUT/static-hypervisors.json" > "$OUT/specs.json"

cleanup() { "$PY" "$HERE/floor.py" --cleanup --uri "$URI" >/dev/null; }

declare -A T
timed() {  # timed KEY LOGFILE command...  (appends the wall time to T[KEY])
  local key=$1 logfile=$2; shift 2
  local start end took
  start=$(date +%s.%N)
  if ! "$@" >"$logfile" 2>&1; then
    log "$key failed; see $logfile"; tail -20 "$logfile" >&2; cleanup; exit 1
  fi
  end=$(date +%s.%N)
  took=$("$PY" -c "print(f'{$end - $start:.2f}')")
  T[$key]="${T[$key]:-} $took"
  log "$key: $took s"
}

interp="ansible_python_interpreter=$PY bench_start=$START_VAR bench_domain_type=$OTHERS_TYPE"
floor_cmd=("$PY" "$HERE/floor.py" "$OUT/specs.json" --uri "$URI" "${FLOOR_START[@]}" --domain-type "$OTHERS_TYPE")
cleanup
# The tools take turns within each repetition, so a noisy neighbour hits them alike.
for rep in $(seq 1 "$REPEAT"); do
  timed ours_first "$OUT/ours-$rep-1.log" "$ROOT/.venv/bin/ansible-playbook" -i "$INV" "$HERE/ours.yml" -e "$interp"
  timed ours_rerun "$OUT/ours-$rep-2.log" "$ROOT/.venv/bin/ansible-playbook" -i "$INV" "$HERE/ours.yml" -e "$interp"
  grep -q "changed=0" "$OUT/ours-$rep-2.log" || log "warning: lcfg.xen's re-run reported changes"
  cleanup
  if [[ $START == 1 ]]; then
    # with the 3-second start watch (Xen's and LXC's default; QEMU's is 0: no watch)
    timed ourswatch_first "$OUT/ours-watch-$rep-1.log" "$ROOT/.venv/bin/ansible-playbook" -i "$INV" "$HERE/ours.yml" \
      -e "$interp" -e '{"bench_start_wait": 3}'
    cleanup
    # ansible-core's own share: the same play with ansible.builtin.ping as its only task, over the
    # LCFG inventory and over a static list of the same hypervisors
    timed ansible_ping "$OUT/ansible-ping-$rep.log" "$ROOT/.venv/bin/ansible-playbook" -i "$INV" "$HERE/ping.yml" -e "$interp"
    timed ansible_ping_static "$OUT/ansible-ping-static-$rep.log" "$ROOT/.venv/bin/ansible-playbook" \
      -i "$OUT/static-hypervisors.json" "$HERE/ping.yml" -e "$interp"
  fi
  if ((rep <= COMMUNITY_REPEAT)); then
    timed community_first "$OUT/community-$rep-1.log" "$BENCH_VENV/bin/ansible-playbook" -i "$INV" "$HERE/community.yml" -e "$interp"
    timed community_rerun "$OUT/community-$rep-2.log" "$BENCH_VENV/bin/ansible-playbook" -i "$INV" "$HERE/community.yml" -e "$interp"
    cleanup
  fi
  timed floor_first "$OUT/floor-$rep-1.log" "${floor_cmd[@]}"
  timed floor_rerun "$OUT/floor-$rep-2.log" "${floor_cmd[@]}"
  cleanup
  # The floor again, starting 8 guests at a time as xen_guests does: what libvirt and
  # QEMU need on this machine with no tool overhead at all.
  timed floorpar_first "$OUT/floorpar-$rep-1.log" "${floor_cmd[@]}" --parallel 8
  cleanup
done

times=""
for key in "${!T[@]}"; do times+="$key=${T[$key]};"; done
RESULT="$OUT/../rollout.json"
if ((HYPERVISORS > 1)); then RESULT="$OUT/../rollout-${HYPERVISORS}x${N}.json"; fi
"$PY" - "$N" "$RESULT" "$WHAT" "$times" "$HYPERVISORS" <<PY
import json, statistics, sys
per, path, what, raw, hvs = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
n = per * hvs
samples = {k: [float(v) for v in vals.split()] for k, vals in
           (item.split("=") for item in raw.split(";") if item)}
t = {k: statistics.median(v) for k, v in samples.items()}
reps = len(samples["ours_first"])
community_reps = len(samples["community_first"])
rows = []
where = f" on {hvs} hypervisors" if hvs > 1 else ""
of_community = f" (community.libvirt: {community_reps})" if community_reps != reps else ""
print(f"\nRollout of {n} guests{where} ({what}), forks ${ANSIBLE_FORKS}, wall seconds, median of {reps}{of_community}")
print(f"{'run':<10} {'lcfg.xen':>9} {'community':>10} {'floor':>7} {'ours/community':>15} {'ours/floor':>11}")
for run in ("first", "rerun"):
    o, c, f = t[f"ours_{run}"], t[f"community_{run}"], t[f"floor_{run}"]
    print(f"{run:<10} {o:>9.2f} {c:>10.2f} {f:>7.2f} {o / c:>15.3f} {o / f:>11.1f}")
    rows.append({"run": run, "lcfg_xen": o, "community_libvirt": c, "floor": f,
                 "ours_over_community": round(o / c, 3), "ours_over_floor": round(o / f, 2)})
print(f"floor with 8 parallel starts, first run: {t['floorpar_first']:.2f} s "
      f"({t['floorpar_first'] / t['community_first']:.3f} of community.libvirt; lcfg.xen "
      f"{t['ours_first'] / t['floorpar_first']:.2f}x of it)")
if "ourswatch_first" in t:
    print(f"lcfg.xen with a 3-s start watch (start_wait 3, the Xen and LXC default): {t['ourswatch_first']:.2f} s, "
          f"{t['ourswatch_first'] / t['floorpar_first']:.2f}x the parallel floor")
for key, over in (("ansible_ping", "the LCFG inventory"), ("ansible_ping_static", "a static list of the hypervisors")):
    if key in t:
        print(f"ansible-playbook alone (the same play, one ansible.builtin.ping task, over {over}): {t[key]:.2f} s; "
              f"parallel floor + that: {(t['floorpar_first'] + t[key]) / t['floorpar_first']:.3f}x the parallel floor")
ratio, rerun = (0.05, 10) if hvs > 1 else (0.1, 5)
print(f"targets: ours/community <= {ratio} on both runs; no-change re-run <= {rerun} s "
      f"(re-run took {t['ours_rerun']:.2f} s)")
json.dump({"guests": n, "hypervisors": hvs, "forks": ${ANSIBLE_FORKS}, "steps": what, "domain_type": "${DOMAIN_TYPE}", "ansible_pin": "${ANSIBLE_PIN}",
           "repetitions": reps, "community_repetitions": community_reps, "results": rows, "floor_parallel_first": t["floorpar_first"],
           "ours_watch_first": t.get("ourswatch_first"), "ansible_ping": t.get("ansible_ping"),
           "ansible_ping_static": t.get("ansible_ping_static"),
           "samples": samples}, open(path, "w"), indent=2)
PY
