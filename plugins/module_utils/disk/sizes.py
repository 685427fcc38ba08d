# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Image sizes: read from the module's ``size`` (``10G``, ``512M``...) and written for people."""

from __future__ import annotations

import re

__all__ = ["GIB", "parse_size", "format_size"]

GIB = 1024**3

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1000**4,
    "tib": 1024**4,
}
_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")


def parse_size(value: object, what: str = "size") -> int:
    """Bytes from an integer (bytes) or a string with a unit.

    Units: none or B (bytes); K, M, G, T and KiB, MiB, GiB, TiB (powers of 1024);
    KB, MB, GB, TB (powers of 1000). Case-insensitive. The result must be a
    positive whole number of 512-byte sectors.
    """
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a size, not a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        raise ValueError(f"{what} {value!r}: give a float with a unit, e.g. '1.5G'")
    else:
        match = _SIZE_RE.match(str(value))
        if not match:
            raise ValueError(
                f"invalid {what} {value!r}: expected a number with an optional unit, e.g. 10G, 512M, 20GiB"
            )
        unit = match.group(2).lower()
        if unit not in _UNITS:
            raise ValueError(
                f"invalid {what} {value!r}: unknown unit {match.group(2)!r} (use B, K, M, G, T, KiB..TiB or KB..TB)"
            )
        if len(match.group(1)) > 24:  # float() of thousands of digits is inf, int(inf) raises
            raise ValueError(f"invalid {what} {str(value)[:40]!r}...: the number is too long")
        amount = float(match.group(1)) * _UNITS[unit]
        if amount != int(amount):
            raise ValueError(f"invalid {what} {value!r}: not a whole number of bytes")
        number = int(amount)
    if number <= 0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    if number % 512:
        raise ValueError(f"{what} {value!r} = {number} bytes is not a multiple of 512 bytes")
    return number


def format_size(number: int | None) -> str | None:
    """Human-readable binary size: 10737418240 -> '10 GiB', 1536 MiB -> '1.5 GiB'."""
    if number is None:
        return None
    for unit, scale in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if number >= scale:
            text = f"{number / scale:.3f}".rstrip("0").rstrip(".")
            return f"{text} {unit}"
    return f"{number} B"
