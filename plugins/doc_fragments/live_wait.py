# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Documentation fragment for the waits on what a running guest does after a change
(plugins/module_utils/domain/observe.py): ``live_wait`` and, in ``START``, ``start_wait``."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  live_wait:
    description:
      - Seconds to wait, after a live change of memory or VCPUs, until the running guest follows it - its
        balloon reaches the new memory target (within 2 MiB), the hypervisor reports the new VCPU count
        and, when the guest agent answers, the guest has that many VCPUs online. Guests changed in one
        task are waited for together.
      - What a guest has not followed by then is listed in its C(live_not_followed) result and warned
        about; the change stays saved and applies at the guest's next start. V(0) checks once, without
        waiting.
      - Each changed guest's result also gives C(memory_actual), the balloon's actual size in MiB (libvirt's
        memory statistics C(actual), else the domain info's current memory) beside the target
        C(after.memory), and C(vcpus_online), the VCPUs the guest's operating system has online (from the
        QEMU guest agent; null - unknown - when no agent answers). Both are null for a guest that does not run.
    type: int
    default: 10
"""

    START = r"""
options:
  start_wait:
    description:
      - Seconds a guest this task started is watched afterwards. If it stops again within them (crashes,
        powers off), the task fails, saying why and showing the last lines of its console log (see
        M(lcfg.xen.xen_domain_info), C(console_log)). V(0) does not watch.
      - The default depends on the driver. On Xen and LXC it is V(3). libvirt's start returns before a Xen
        guest's kernel or a container's init runs, so a guest whose kernel or init fails stops just after it
        (an LXC container whose init fails, 0.2 s after).
      - On QEMU/KVM, and every other driver, it is V(0). A QEMU guest stops by itself only when it powers
        off, after its firmware and a boot (at least 6 s for a Linux kernel with a one-line init under TCG),
        and without a pvpanic device a kernel panic does not stop it, so a short watch would catch nothing.
        Set a longer O(start_wait) to watch such guests through their boot.
      - Guests of libvirt's test driver (V(test:///default)) run nothing and are not watched.
    type: int
"""
