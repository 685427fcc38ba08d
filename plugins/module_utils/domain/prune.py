# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Pruning: which guests of a hypervisor no profile lists any more. Pure: no Ansible, no libvirt.

LCFG's profiles are the truth, so a guest lcfg.xen defined that the play's ``guests`` list no
longer names is *stale*. Only guests carrying lcfg.xen's metadata element
(``<lcfg:guest>`` of namespace ``METADATA_NS``, written on every define) are candidates: a
domain defined by hand or by another tool never is.

Several sites (inventories, plays) may share one libvirtd. Each may name itself with the play
option ``owner``; lcfg.xen records it as the ``owner`` attribute of its metadata element when
it defines (or first converges) a guest, and a play prunes only the guests of its own owner.
Guests recorded without an owner belong to the plays that set none: a play without ``owner``
never prunes another site's guest, and a play with one never prunes an unowned guest. A play
with an owner refuses to converge another owner's guest (unless adopted) and claims the
unowned guests it lists; a call without one (like ``xen_domain``) changes any lcfg.xen guest
and keeps its recorded owner.

- ``owner_of(xml)``: ``(marked, owner)`` of a domain definition or of its marker element.
- ``stamp_owner(xml, owner)``: the definition with ``owner`` recorded on its marker.
- ``owner_conflict(name, current_owner, owner)``: why a play of ``owner`` may not converge a
  guest recorded for ``current_owner`` (None when it may).
- ``plan_prune(definitions, listed, owner)``: the ``PrunePlan`` (stale names, the others left
  alone and why); a definition may be given as its marker element alone, or None.
- ``kept_paths(remove_paths, listed_paths)``: the image files a prune must keep because a
  listed guest names them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ansible_collections.lcfg.xen.plugins.module_utils.common.imports import optional_import
from ansible_collections.lcfg.xen.plugins.module_utils.domain.desired import METADATA_NS

etree = optional_import("lxml.etree")[0]

__all__ = [
    "OWNER_ATTR",
    "PrunePlan",
    "check_owner_name",
    "owner_of",
    "stamp_owner",
    "owner_conflict",
    "plan_prune",
    "kept_paths",
]

#: the attribute of ``<lcfg:guest>`` that names the site (play option ``owner``) a guest belongs to
OWNER_ATTR = "owner"
_OWNER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$")


def check_owner_name(owner: str | None) -> str | None:
    """The error for an ``owner`` value that cannot be recorded (None when it is fine)."""
    if owner is None or _OWNER_RE.match(owner):
        return None
    return (
        f"{owner!r} is not a valid owner: 1-128 characters of letters, digits and . _ : @ / -, "
        "starting with a letter or digit (for example the site's or inventory's name)"
    )


def _marker(root):
    return root.find(f"metadata/{{{METADATA_NS}}}guest")


def owner_of(xml: str | None) -> tuple[bool, str | None]:
    """``(carries lcfg.xen's marker, the owner recorded on it or None)`` of a domain
    definition, or of the marker element alone (None: a domain without one)."""
    if xml is None:
        return False, None
    root = etree.fromstring(xml.encode())
    # libvirt's metadata call hands the marker back without its namespace
    marker = root if root.tag in (f"{{{METADATA_NS}}}guest", "guest") else _marker(root)
    if marker is None:
        return False, None
    return True, marker.get(OWNER_ATTR) or None


def stamp_owner(xml: str, owner: str) -> str:
    """``xml`` with ``owner`` recorded on its marker (the definition must carry one)."""
    root = etree.fromstring(xml.encode())
    marker = _marker(root)
    if marker is None:
        raise ValueError("the definition carries no lcfg.xen marker")
    marker.set(OWNER_ATTR, owner)
    return etree.tostring(root, encoding="unicode")


def owner_conflict(name: str, current_owner: str | None, owner: str | None) -> str | None:
    """Why a play of ``owner`` may not converge guest ``name`` whose marker records
    ``current_owner``; None when it may. A play with an owner claims unowned guests it lists
    (how a site moves to owners); a guest of another owner is another site's. A call without
    an owner (an ad-hoc task, like xen_domain, which has none) may change any lcfg.xen guest
    and keeps its recorded owner; it only never prunes an owned one."""
    if owner is None or current_owner is None or current_owner == owner:
        return None
    return (
        f"guest {name} belongs to another site: lcfg.xen recorded it for owner {current_owner!r}, "
        f"this play has owner {owner!r} (xen_guests owner; role lcfg.xen.guest guest_owner). It is left "
        "alone: give the guest a name of its own, run the play of that site, or, if this site should "
        f"manage it from now on, adopt it once (xen_guests adopt: [{name}]; guest_adopt: [{name}])"
    )


@dataclass
class PrunePlan:
    #: guests lcfg.xen defined for this owner that the list does not name, sorted
    stale: list[str] = field(default_factory=list)
    #: marked guests not listed but recorded for another owner: left alone
    other_owners: dict[str, str | None] = field(default_factory=dict)
    #: domains without lcfg.xen's marker (defined by hand or another tool): never candidates
    unmarked: list[str] = field(default_factory=list)


def plan_prune(definitions: dict[str, str | None], listed: set[str] | list[str], owner: str | None) -> PrunePlan:
    """Sort the persistent domains ``definitions`` ({name: inactive XML}) that are not in
    ``listed`` into stale (this owner's, to prune), other owners' and unmarked ones."""
    plan = PrunePlan()
    listed = set(listed)
    for name in sorted(definitions):
        if name in listed:
            continue
        marked, recorded = owner_of(definitions[name])
        if not marked:
            plan.unmarked.append(name)
        elif recorded != owner:
            plan.other_owners[name] = recorded
        else:
            plan.stale.append(name)
    return plan


def kept_paths(remove_paths: list[str], listed_paths: set[str]) -> list[str]:
    """The paths of ``remove_paths`` (resolved image files of a stale guest) that a listed guest
    names (``listed_paths``, resolved): a guest of the list may be about to use them."""
    return [path for path in remove_paths if os.path.normpath(path) in listed_paths]
