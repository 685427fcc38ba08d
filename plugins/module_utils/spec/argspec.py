# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The guest options as argument specs, derived from the guest schema (``spec.schema``) and
documented by the ``lcfg.xen.guest`` doc fragment. Only modules use it; the engines do not.

``GUEST_ARGSPEC``: the options of one guest, as top-level module options (xen_domain).
``OPERATION_ARGSPEC``: what to do with it (state, shutdown_timeout, force_stop, remove_disks).
``HOSTVAR_ONLY_KEYS``: keys of the ``xen_domain`` hostvar that belong to disk handling
(xen_disk) or the inventory; xen_guests tolerates them in its guest dicts, xen_domain does
not accept them. A guest given as data (xen_guests) is checked by ``schema.check_guest_item``.
"""

from __future__ import annotations

from ansible_collections.lcfg.xen.plugins.module_utils.spec.schema import GUEST, HOSTVAR_ONLY_KEYS, OPERATION, argspec

__all__ = [
    "GUEST_ARGSPEC",
    "OPERATION_ARGSPEC",
    "HOSTVAR_ONLY_KEYS",
    "guest_module_argspec",
]

GUEST_ARGSPEC: dict = argspec(GUEST)
OPERATION_ARGSPEC: dict = argspec(OPERATION)


def guest_module_argspec() -> dict:
    """GUEST_ARGSPEC + OPERATION_ARGSPEC (without the connection options)."""
    spec = dict(GUEST_ARGSPEC)
    spec.update(OPERATION_ARGSPEC)
    return spec
