# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Argument specs shared by several modules, declared once.

``check_items(items, spec, option)``: validate the dicts of a list option against ``spec`` the
way AnsibleModule validates suboptions (types, choices, defaults, required, unknown keys), for
list options whose items take the module's own top-level options (documented once, not
repeated as suboptions). Raises ValidationError naming ``option[index]``.
"""

from __future__ import annotations

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import ValidationError
from ansible_collections.lcfg.xen.plugins.module_utils.common.module import misshapen

__all__ = ["CONNECTION_ARGSPEC", "with_connection", "check_items"]

CONNECTION_ARGSPEC: dict = {
    "uri": {"type": "str", "default": "qemu:///system"},
}


def with_connection(spec: dict) -> dict:
    """Return ``spec`` plus the connection options."""
    merged = dict(CONNECTION_ARGSPEC)
    merged.update(spec)
    return merged


def check_items(items: list, spec: dict, option: str) -> list:
    """Return ``items`` validated against ``spec``, defaults filled in, types converted."""
    validator = ArgumentSpecValidator(spec)
    checked = []
    for index, item in enumerate(items):
        where = f"{option}[{index}]"
        wrong = list(misshapen(item, spec, f"{where}.")) if isinstance(item, dict) else [where]
        if wrong:
            raise ValidationError(wrong[0], "must be a dict")
        try:
            result = validator.validate(item)
        except (TypeError, ValueError, OverflowError, UnicodeError) as exc:  # ansible-core's own
            raise ValidationError(where, f"a value the module cannot take ({exc})") from None
        unknown = sorted(result.unsupported_parameters)
        if unknown:
            raise ValidationError(
                f"{where}.{unknown[0]}", f"unknown option; valid options are {', '.join(sorted(spec))}"
            )
        if result.error_messages:
            raise ValidationError(where, result.error_messages[0])
        checked.append(result.validated_parameters)
    return checked
