# -*- coding: utf-8 -*-
# Copyright: lcfg.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Argument specs shared by several modules, declared once."""

from __future__ import annotations

__all__ = ["CONNECTION_ARGSPEC", "with_connection"]

CONNECTION_ARGSPEC: dict = {
    "uri": {"type": "str", "default": "qemu:///system"},
}


def with_connection(spec: dict) -> dict:
    """Return ``spec`` plus the connection options."""
    merged = dict(CONNECTION_ARGSPEC)
    merged.update(spec)
    return merged
