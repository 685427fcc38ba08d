#!/usr/bin/python
# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""List the snapshots of a guest."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: xen_snapshot_info
short_description: List the snapshots of a guest
version_added: 0.2.0
description:
  - Lists the snapshots of one libvirt guest, oldest first, with the current one marked.
  - A guest that does not exist gives an empty list and RV(exists=false); a guest on a driver
    without snapshots (Xen/libxl, LXC) gives an empty list.
author:
  - lcfg.xen contributors (!UNKNOWN)
options:
  name:
    description: The libvirt domain whose snapshots to list.
    type: str
    required: true
  snapshot:
    description: Report only this snapshot (an empty list when the guest has none of this name).
    type: str
extends_documentation_fragment:
  - lcfg.xen.connection
  - lcfg.xen.connection.read_only
  - lcfg.xen.connection.attributes
seealso:
  - module: lcfg.xen.xen_snapshot
"""

EXAMPLES = r"""
- name: The snapshots of web1
  lcfg.xen.xen_snapshot_info:
    uri: qemu:///system
    name: web1
  register: web1_snapshots

- name: Their names
  ansible.builtin.debug:
    msg: "{{ web1_snapshots.snapshots | map(attribute='name') | list }} (current: {{ web1_snapshots.current }})"
"""

RETURN = r"""
exists:
  description: Whether the guest exists.
  returned: always
  type: bool
  sample: true
current:
  description: The name of the guest's current snapshot (the last one taken or reverted to), or null.
  returned: always
  type: str
  sample: before-upgrade
snapshots:
  description: The guest's snapshots, oldest first.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Snapshot name.
      type: str
      sample: before-upgrade
    description:
      description: Its description (empty when none).
      type: str
    state:
      description: The guest's state when it was taken (libvirt's words - V(running), V(shutoff), ...).
      type: str
      sample: running
    memory:
      description: Whether it holds the guest's memory.
      type: bool
    parent:
      description: The snapshot it was taken on top of, or null.
      type: str
    creation_time:
      description: When it was taken, in seconds since the epoch.
      type: int
      sample: 1796203676
    current:
      description: Whether it is the current snapshot.
      type: bool
    disks:
      description: Its disks - C(target) (the guest's device) and C(snapshot) (V(internal), V(external) or V(no)).
      type: list
      elements: dict
      sample: [{target: vda, snapshot: internal}]
"""

from ansible_collections.lcfg.xen.plugins.module_utils.common.argspec import with_connection
from ansible_collections.lcfg.xen.plugins.module_utils.common.module import (
    AnsibleModule,
    require_lxml,
    run_module,
    with_libvirt,
)
from ansible_collections.lcfg.xen.plugins.module_utils.snapshot.engine import snapshot_info

ARGUMENT_SPEC = with_connection({"name": {"type": "str", "required": True}, "snapshot": {"type": "str"}})


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    require_lxml(module)
    params = module.params
    run_module(
        module,
        lambda: dict(
            with_libvirt(params["uri"], lambda conn: snapshot_info(conn, params["name"], params["snapshot"])),
            changed=False,
        ),
    )


if __name__ == "__main__":
    main()
