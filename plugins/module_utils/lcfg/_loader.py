# -*- coding: utf-8 -*-
# Copyright: lcfg.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Turn configured sources (files, directories, http(s) URLs) into profiles."""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import LcfgError
from ._profile import Profile

__all__ = ["LoadedProfile", "load_profiles"]


@dataclass
class LoadedProfile:
    source: str              # file path or URL
    profile: Profile | None  # None when it failed
    error: LcfgError | None


def load_profiles(sources: list[str], base_dir: str, include_path: list[str] | None = None,
                  defines: dict[str, str] | None = None, timeout: float = 30.0,
                  validate_certs: bool = True) -> list[LoadedProfile]:
    """Read every profile named by sources, one result per profile, in sorted path order."""
    return []
