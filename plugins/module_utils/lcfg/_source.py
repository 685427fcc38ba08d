# -*- coding: utf-8 -*-
# Copyright: lcfg.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Reader for LCFG source profiles (cpp subset + statements + mutations)."""

from __future__ import annotations

from ._errors import LcfgError
from ._profile import Profile

__all__ = ["read_source_profile"]


def read_source_profile(path: str, include_path: list[str] | None = None,
                        defines: dict[str, str] | None = None, name: str | None = None,
                        text: str | None = None) -> Profile:
    """Read one source profile; only LcfgError may come out."""
    raise LcfgError("source profile reader not implemented yet", file=path)
