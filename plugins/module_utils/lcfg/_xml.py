# -*- coding: utf-8 -*-
# Copyright: lcfg.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Reader for compiled LCFG XML profiles."""

from __future__ import annotations

from ._errors import LcfgError
from ._profile import Profile

__all__ = ["read_xml_profile"]


def read_xml_profile(path: str, data: bytes | None = None, name: str | None = None) -> Profile:
    """Read one XML profile (file or given bytes); only LcfgError may come out."""
    raise LcfgError("XML profile reader not implemented yet", file=path)
