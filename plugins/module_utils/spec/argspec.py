# -*- coding: utf-8 -*-
# Copyright: lcfg.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The guest options as argument specs, derived from the guest schema (``_schema``) and
documented by the ``lcfg.xen.guest`` doc fragment.

``GUEST_ARGSPEC``: the options of one guest, as top-level module options (xen_domain).
``OPERATION_ARGSPEC``: what to do with it (state, shutdown_timeout, force_stop, remove_disks).
``HOSTVAR_ONLY_KEYS``: keys of the ``xen_domain`` hostvar that belong to disk handling
(xen_disk) or the inventory; xen_guests tolerates them in its guest dicts, xen_domain does
not accept them.
``check_guest_item(item, prefix)``: for modules that take guests as plain dicts (xen_guests):
rejects unknown keys, naming them, and returns the item with the defaults of
``OPERATION_ARGSPEC`` filled in.
"""

from __future__ import annotations

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import ValidationError
from ansible_collections.lcfg.xen.plugins.module_utils.spec.schema import (
    DISK,
    EXTRA,
    GUEST,
    HOSTVAR_ONLY_KEYS,
    OPERATION,
    VIF,
    argspec,
    check_guest,
)
from ansible_collections.lcfg.xen.plugins.module_utils.common.validate import parse_bool, parse_int

__all__ = [
    "GUEST_ARGSPEC",
    "OPERATION_ARGSPEC",
    "HOSTVAR_ONLY_KEYS",
    "guest_module_argspec",
    "check_guest_item",
]

_DISK_OPTIONS = argspec(DISK)
_VIF_OPTIONS = argspec(VIF)
_EXTRA_OPTIONS = argspec(EXTRA)

GUEST_ARGSPEC: dict = argspec(GUEST)
OPERATION_ARGSPEC: dict = argspec(OPERATION)


def guest_module_argspec() -> dict:
    """GUEST_ARGSPEC + OPERATION_ARGSPEC (without the connection options)."""
    spec = dict(GUEST_ARGSPEC)
    spec.update(OPERATION_ARGSPEC)
    return spec


def _check_keys(item: object, allowed: dict, where: str, extra: tuple = ()) -> dict:
    if not isinstance(item, dict):
        raise ValidationError(where, f"must be a dict, got {type(item).__name__}")
    unknown = sorted(set(item) - set(allowed) - set(extra))
    if unknown:
        raise ValidationError(f"{where}.{unknown[0]}" if where else unknown[0],
                              f"unknown option; valid options are {', '.join(sorted(allowed))}")
    return item


def check_guest_item(item: object, prefix: str) -> dict:
    """Check one guest dict given as data (xen_guests ``guests`` item).

    Unknown keys fail (naming them); the hostvar-only keys are dropped; operation options get
    their defaults; booleans and integers written as strings are converted.
    """
    where = prefix.rstrip(".")
    data = dict(_check_keys(item, guest_module_argspec(), where, HOSTVAR_ONLY_KEYS))
    for key in HOSTVAR_ONLY_KEYS:
        data.pop(key, None)
    check_guest(data, prefix)  # types and sizes first: the loops below walk the lists
    for key, option in OPERATION_ARGSPEC.items():
        if data.get(key) is None:
            data[key] = option["default"]
    for key in ("autostart", "force_stop", "remove_disks"):
        if data.get(key) is not None:
            try:
                data[key] = parse_bool(data[key])
            except ValueError as exc:
                raise ValidationError(f"{prefix}{key}", str(exc)) from None
    try:
        data["shutdown_timeout"] = parse_int(data["shutdown_timeout"], minimum=0, what="shutdown_timeout")
    except ValueError as exc:
        raise ValidationError(f"{prefix}shutdown_timeout", str(exc)) from None
    if data["state"] not in OPERATION_ARGSPEC["state"]["choices"]:
        raise ValidationError(f"{prefix}state", f"unknown state {data['state']!r}: use one of "
                              f"{', '.join(OPERATION_ARGSPEC['state']['choices'])}")
    for key, options in (("disks", _DISK_OPTIONS), ("vifs", _VIF_OPTIONS)):
        for index, sub in enumerate(data.get(key) or []):
            _check_keys(sub, options, f"{prefix}{key}[{index}]")
    if isinstance(data.get("extra"), dict):  # text is read by _domain_xml.parse_extra_text
        _check_keys(data["extra"], _EXTRA_OPTIONS, f"{prefix}extra")
    return data
