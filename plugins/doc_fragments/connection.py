# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Documentation fragment for the libvirt connection option."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  uri:
    description:
      - libvirt connection URI of the hypervisor to manage.
      - V(xen:///system) for Xen (libxl), V(qemu:///system) for KVM/QEMU, V(test:///default)
        for libvirt's test driver; only these are tested. Guests for other drivers (C(lxc://),
        ...) are refused before anything changes.
      - Remote URIs of these drivers (for example V(xen+ssh://root@host/system)) are passed to
        libvirt unchanged; the collection's tests run on local URIs only.
      - Set it once for every module of the collection with C(module_defaults) and the
        action group C(group/lcfg.xen.xen).
    type: str
    default: qemu:///system
requirements:
  - libvirt-python (or Debian's python3-libvirt) on the managed host
  - lxml on the managed host
"""

    ATTRIBUTES = r"""
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Check mode reads the current state and reports exactly the changes and diff a real run would make,
      without making them.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: The diff shows the normalised configuration before and after, in the same vocabulary the module accepts.
  idempotent:
    description: When run twice in a row outside check mode, with the same arguments, the second invocation indicates
      no change.
    support: full
"""

    # For the _info modules. Only what differs: list it before lcfg.xen.connection.attributes
    # (which gives the descriptions), since an earlier fragment wins over a later one.
    READ_ONLY = r"""
attributes:
  check_mode:
    details: The module only reads.
  diff_mode:
    support: none
    details: The module only reads; nothing changes, so there is nothing to show.
  idempotent:
    details: The module only reads, so a second run reports no change either.
"""
