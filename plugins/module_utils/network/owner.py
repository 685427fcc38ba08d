# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Which libvirt networks xen_bridge created: the rest are someone else's.

A profile names its NAT and routed networks (``xen.natnetwork``), so without a record a
profile could redefine libvirt's own ``default`` network, or any network the admin made.
libvirt 9.0 has no metadata on networks, so xen_bridge keeps the record itself: a JSON file
``{"networks": {uuid: name}}`` in a root-only directory outside the storage directories
(a guest's disk can never be this file). A network counts as xen_bridge's when its current
UUID is recorded under its current name; one deleted and redefined by someone else gets a new
UUID and is foreign again. The file is written atomically, under the hypervisor lock.
"""

from __future__ import annotations

import json
import os
import stat

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import Conflict, XenError

NETWORK_STATE_FILE = "/var/lib/lcfg-xen-state/networks.json"


def read_owned(path: str) -> dict:
    """``{uuid: name}`` of the networks xen_bridge created (or adopted); {} before the first."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise XenError(
            f"cannot read xen_bridge's record of its libvirt networks {path}: {exc}; "
            "fix or remove the file (then adopt the networks again, see adopt)"
        ) from None
    networks = data.get("networks") if isinstance(data, dict) else None
    if not isinstance(networks, dict):
        raise XenError(
            f"{path} is not xen_bridge's record of its libvirt networks (no 'networks' mapping): "
            "fix or remove the file (then adopt the networks again, see adopt)"
        )
    return {str(uuid): str(name) for uuid, name in networks.items()}


def check_owned(request: dict, uuid: str | None, actions: list, owned: dict, path: str, prefix: str = "") -> None:
    """Refuse to change an existing libvirt network xen_bridge did not create, unless adopted."""
    if uuid is None or not actions or request.get("adopt") or owned.get(uuid) == request["name"]:
        return
    raise Conflict(
        f"{prefix}name: libvirt network {request['name']} (uuid {uuid}) was not created by lcfg.xen "
        f"(not in {path}); it would {'; '.join(actions)}. It is left alone: use a network name of "
        "its own (the profile's xen.natnetwork / xen.routenetwork), or, if lcfg.xen should manage "
        f"it from now on, set adopt: true (role lcfg.xen.network: network_adopt: [{request['name']}])"
    )


def _private_directory(directory: str) -> None:
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise XenError(
            f"{directory} is not a private directory of uid {os.geteuid()} (a link, someone "
            "else's, or open to others): remove it and run again"
        )


def write_owned(path: str, owned: dict) -> None:
    """Replace the record atomically (0600 in a 0700 directory, links not followed)."""
    directory = os.path.dirname(path)
    _private_directory(directory)
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"networks": dict(sorted(owned.items()))}, handle, indent=1)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def update_owned(path: str, add: dict, remove: set) -> None:
    """Record ``add`` ({uuid: name}) and forget the UUIDs in ``remove``; no write when unchanged."""
    owned = read_owned(path)
    updated = {uuid: name for uuid, name in owned.items() if uuid not in remove}
    updated.update(add)
    if updated != owned:
        write_owned(path, updated)
