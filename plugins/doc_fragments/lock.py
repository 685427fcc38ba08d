# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Documentation fragment for the per-hypervisor lock of the changing modules
(plugins/module_utils/common/lock.py)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  lock_timeout:
    description:
      - Seconds to wait for another run's changing call on the same hypervisor before failing.
      - Every changing call of the collection (M(lcfg.xen.xen_domain), M(lcfg.xen.xen_guests),
        M(lcfg.xen.xen_group), M(lcfg.xen.xen_bridge), M(lcfg.xen.xen_disk), M(lcfg.xen.xen_snapshot)) holds a lock per
        hypervisor from its first read to its last change, so two playbook runs on one host
        take turns instead of acting on what the other is half-way through. Check mode and the
        C(_info) modules take no lock.
      - The lock files live in C(/run/lcfg-xen) (mode 0700; for a user other than root in
        C($TMPDIR/lcfg-xen-<uid>)), one per hypervisor (C(hypervisor-localhost.lock) for a local
        URI, C(hypervisor-<host>.lock) for a remote one). When the wait runs out the module fails
        naming the holder (its pid, module and start time). The kernel releases the lock of a run
        that is killed.
    type: float
    default: 600
"""
