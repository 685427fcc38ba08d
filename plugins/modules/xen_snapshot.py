#!/usr/bin/python
# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Create, revert to or delete one snapshot of a guest."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: xen_snapshot
short_description: Create, revert to or delete a snapshot of a guest
version_added: 0.2.0
description:
  - Takes, reverts to or deletes one named snapshot of a libvirt guest. To list a guest's
    snapshots use M(lcfg.xen.xen_snapshot_info).
  - Snapshots are libvirt's internal snapshots, stored inside the guest's qcow2 images. Every
    writable disk of the guest must be qcow2; a guest with a raw disk (or no disk) is refused
    naming the disk, its format and the fix, before anything changes.
  - A shut-off guest gets a disk-only snapshot. A running (or paused) guest's snapshot holds its
    memory and device state too (QEMU cannot take an internal disk-only snapshot of a running
    guest); reverting to it brings the guest back running where it was.
  - Only libvirt's QEMU/KVM driver (and its test driver) have snapshots. On Xen (libxl) and LXC
    the module fails naming the driver; take the images' snapshots on the host there.
  - Reverting also brings back the guest's definition as it was when the snapshot was taken
    (memory, VCPUs, devices).
author:
  - lcfg.xen contributors (!UNKNOWN)
options:
  name:
    description:
      - The guest (libvirt domain) name.
    type: str
    required: true
  snapshot:
    description:
      - The snapshot's name - 1 to 64 letters, digits, C(_), C(.) or C(-), starting with a letter
        or digit.
    type: str
    required: true
  state:
    description:
      - V(present) takes the snapshot unless the guest has one of this name already (then
        nothing changes, whatever the guest did since; delete it first to take a new one).
      - V(absent) deletes it when it exists (its data inside the images too); also when the guest
        does not exist, nothing changes.
      - V(reverted) puts the guest's disks (and, for a snapshot of a running guest, its memory and
        power state) back to the snapshot. It always reverts and reports a change, since libvirt
        cannot tell whether the guest changed since the snapshot; the snapshot becomes the current one.
    type: str
    choices: [present, absent, reverted]
    default: present
  description:
    description:
      - A description stored with a new snapshot. An existing snapshot keeps its own (a differing
        one gives a warning).
    type: str
    default: ""
  memory:
    description:
      - Whether the snapshot holds the guest's memory. Left unset, a running or paused guest's
        snapshot does and a shut-off guest's does not, which are the only combinations QEMU's
        internal snapshots allow; setting it states the expectation, and a guest in the other
        power state is refused (for example V(false) for a running guest).
    type: bool
  force:
    description:
      - With O(state=reverted), revert even when libvirt calls it risky (for example a running
        guest whose devices changed since the snapshot, whose QEMU process libvirt then restarts).
    type: bool
    default: false
extends_documentation_fragment:
  - lcfg.xen.connection
  - lcfg.xen.lock
  - lcfg.xen.connection.attributes
attributes:
  idempotent:
    support: partial
    details: V(present) and V(absent) are idempotent. V(reverted) always reverts and reports a change.
  diff_mode:
    details: The diff shows the guest's snapshot names (oldest first) and the current one, before and after.
seealso:
  - module: lcfg.xen.xen_snapshot_info
  - module: lcfg.xen.xen_disk
  - name: libvirt snapshot XML format
    description: What libvirt stores for a snapshot.
    link: https://libvirt.org/formatsnapshot.html
"""

EXAMPLES = r"""
- name: Snapshot a guest before an upgrade
  lcfg.xen.xen_snapshot:
    uri: qemu:///system
    name: web1
    snapshot: before-upgrade
    description: taken by the upgrade play

- name: Go back to it
  lcfg.xen.xen_snapshot:
    name: web1
    snapshot: before-upgrade
    state: reverted

- name: Drop it
  lcfg.xen.xen_snapshot:
    name: web1
    snapshot: before-upgrade
    state: absent
"""

RETURN = r"""
name:
  description: The guest whose snapshot this is (O(name)).
  returned: always
  type: str
  sample: web1
changed:
  description: Whether the snapshot was (in check mode, would be) created, reverted to or deleted.
  returned: always
  type: bool
  sample: true
snapshot:
  description: The snapshot's name (O(snapshot)).
  returned: always
  type: str
  sample: before-upgrade
actions:
  description:
    - What was done (or would be done in check mode) - V(create snapshot <name> (disk only)),
      V(create snapshot <name> (with memory)), V(revert to snapshot <name>) or
      V(delete snapshot <name>) - or nothing.
  returned: always
  type: list
  elements: str
  sample: [create snapshot before-upgrade (with memory)]
pending_restart:
  description: Always C([]) - snapshots take effect at once (the result contract of the collection).
  returned: always
  type: list
  elements: str
  sample: []
before:
  description: The guest's snapshots before the run - their names, oldest first, and the current one.
  returned: always
  type: dict
  sample: {snapshots: [], current: null}
after:
  description: The same after the run (read back from libvirt; in check mode, the prediction).
  returned: always
  type: dict
  sample: {snapshots: [before-upgrade], current: before-upgrade}
info:
  description:
    - The snapshot as it is after the run (in check mode, the prediction), or null when it does
      not exist; the form of M(lcfg.xen.xen_snapshot_info)'s RV(lcfg.xen.xen_snapshot_info#module:snapshots[]) entries.
  returned: always
  type: dict
  sample: {name: before-upgrade, description: taken by the upgrade play, state: running, memory: true,
           parent: null, creation_time: 1796203676, current: true, disks: [{target: vda, snapshot: internal}]}
diff:
  description: RV(before) and RV(after).
  returned: in diff mode
  type: dict
lock_waited:
  description: Seconds spent waiting for the hypervisor's lock (O(lock_timeout)) before the first read.
  returned: when not in check mode
  type: float
  sample: 0.0
"""

from ansible_collections.lcfg.xen.plugins.module_utils.common.argspec import with_connection
from ansible_collections.lcfg.xen.plugins.module_utils.common.lock import LOCK_ARGSPEC
from ansible_collections.lcfg.xen.plugins.module_utils.common.module import (
    AnsibleModule,
    require_lxml,
    run_module,
    with_libvirt,
)
from ansible_collections.lcfg.xen.plugins.module_utils.snapshot.engine import converge_snapshot

ARGUMENT_SPEC = with_connection(
    dict(
        {
            "name": {"type": "str", "required": True},
            "snapshot": {"type": "str", "required": True},
            "state": {"type": "str", "choices": ["present", "absent", "reverted"], "default": "present"},
            "description": {"type": "str", "default": ""},
            "memory": {"type": "bool"},
            "force": {"type": "bool", "default": False},
        },
        **LOCK_ARGSPEC,
    )
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    require_lxml(module)
    run_module(
        module,
        lambda: with_libvirt(
            module.params["uri"], lambda conn: converge_snapshot(conn, module.params, check_mode=module.check_mode)
        ),
        lock=True,
    )


if __name__ == "__main__":
    main()
