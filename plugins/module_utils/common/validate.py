# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Pure validators shared by the LCFG model and the modules.

Each returns the canonical value or raises ``ValueError`` with a short problem
statement; callers add the object (parameter name or profile file:line).
"""

from __future__ import annotations

import os.path
import re

__all__ = [
    "GUEST_TYPES",
    "TYPE_ALIASES",
    "canonical_guest_type",
    "parse_bool",
    "parse_cpuset",
    "parse_int",
    "valid_disk_name",
    "valid_guest_name",
    "valid_mac",
    "valid_uuid",
    "path_inside",
    "cpuset_members",
    "HOSTNAME_RE",
    "HOSTNAME_UNDERSCORE_RE",
    "IFNAME_MAX",
    "IFNAME_RE",
    "DEVICE_NAME_RE",
    "safe_name",
]

GUEST_TYPES = ("pv", "hvm", "pvh", "container")
TYPE_ALIASES = {
    "pv": "pv",
    "paravm": "pv",
    "para": "pv",
    "hvm": "hvm",
    "pvh": "pvh",
    "container": "container",
    "lxc": "container",
}


def _dotted_labels(rest: str, end: str) -> str:
    """Dot-separated labels, each a letter or digit followed by ``rest`` (a quantified
    character class), the whole ending with ``end`` (``$`` or ``\\Z``)."""
    label = f"[A-Za-z0-9]({rest})"
    return rf"{label}(\.{label})*{end}"


#: host names (the base pattern): dot-separated labels of at most 63 letters, digits and '-',
#: each starting with a letter or digit (xen_bridge DHCP host names)
HOSTNAME_RE = re.compile("^" + _dotted_labels("[A-Za-z0-9-]{0,62}", "$"))
#: the documented variant: the same, also allowing '_' after a label's first character
#: (the LCFG host name xen_disk writes into a clone's files)
HOSTNAME_UNDERSCORE_RE = re.compile("^" + _dotted_labels("[A-Za-z0-9_-]{0,62}", "$"))
#: dot-separated labels, each starting with a letter or digit: a guest name is also a valid
#: host name for the clone's LCFG files (xen_disk ``hostname``); at most 64 characters in all
_NAME_RE = re.compile(r"^(?=.{1,64}\Z)" + _dotted_labels("[A-Za-z0-9_-]*", r"\Z"))
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_INT_RE = re.compile(r"^-?(0|[1-9][0-9]*)$")
_CPUSET_ITEM_RE = re.compile(r"^\^?[0-9]+(-[0-9]+)?$")

#: Linux interface names: at most IFNAMSIZ - 1 characters
IFNAME_MAX = 15
#: the characters ip(8) takes in an interface name (the length and ':' are checked apart)
IFNAME_RE = re.compile(r"^[A-Za-z0-9_.:+-]+$")
#: a name usable as it is as a Linux device: IFNAME_RE without ':', 1 to IFNAME_MAX characters
DEVICE_NAME_RE = re.compile(rf"^[A-Za-z0-9_.+-]{{1,{IFNAME_MAX}}}$")
#: libvirt's VIR_DOMAIN_CPUMASK_LEN: CPU numbers are below it (bounds what a cpuset expands to)
MAX_CPUS = 16384
_TRUE = {"yes", "true", "on", "1"}
_FALSE = {"no", "false", "off", "0", ""}


def valid_guest_name(value: str) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise ValueError(
            f"invalid guest name {value!r}: use letters, digits, '_', '.', '-', "
            "starting with a letter or digit (also after each '.'), at most 64 characters"
        )
    return value


def valid_uuid(value: str) -> str:
    text = str(value).strip().lower()
    if not _UUID_RE.match(text):
        raise ValueError(f"invalid UUID {value!r}: expected 8-4-4-4-12 hexadecimal digits")
    return text


def valid_mac(value: str) -> str:
    text = str(value).strip().lower().replace("-", ":")
    if not _MAC_RE.match(text):
        raise ValueError(f"invalid MAC address {value!r}: expected six hex pairs like 00:16:3e:00:00:01")
    if int(text[:2], 16) & 1:
        raise ValueError(f"invalid MAC address {value!r}: a multicast address cannot name a NIC")
    return text


def parse_int(value: object, minimum: int | None = None, what: str = "value") -> int:
    if isinstance(value, bool):
        raise ValueError(f"{what} must be an integer, not a boolean")
    if isinstance(value, int):
        number = value
    else:
        text = str(value).strip()
        if not _INT_RE.match(text):
            raise ValueError(f"{what} must be an integer, got {value!r}")
        number = int(text)
    if minimum is not None and number < minimum:
        raise ValueError(f"{what} must be at least {minimum}, got {number}")
    return number


def parse_bool(value: object) -> bool:
    """LCFG boolean spelling (case-insensitive): yes/true/on/1 and no/false/off/0/empty."""
    if isinstance(value, bool):
        return value
    text = "" if value is None else str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"invalid boolean {value!r}: use yes/no, true/false, on/off or 1/0")


def canonical_guest_type(value: str) -> str:
    key = str(value).strip().lower()
    if key not in TYPE_ALIASES:
        raise ValueError(
            f"unknown guest type {value!r}: use one of pv (also paravm, para), hvm, pvh, container (also lxc)"
        )
    return TYPE_ALIASES[key]


def parse_cpuset(value: str) -> str:
    """Validate a physical CPU list as libvirt's cpuset syntax; return it without spaces."""
    text = str(value).replace(" ", "")
    items = text.split(",") if text else []
    if not items or not all(_CPUSET_ITEM_RE.match(item) for item in items):
        raise ValueError(f"invalid CPU list {value!r}: expected e.g. '0,1,2,3' or '2-3'")
    for item in items:
        low, _sep, high = item.lstrip("^").partition("-")
        # length first: int() of a 5,000-digit number is itself slow
        if max(len(low), len(high)) > 5 or max(int(low), int(high or low)) >= MAX_CPUS:
            raise ValueError(f"CPU number in {item[:20]!r} out of range: CPUs are numbered 0 to {MAX_CPUS - 1}")
        if high and int(low) > int(high):
            raise ValueError(f"invalid CPU range {item!r} in {value!r}")
    return text


def cpuset_members(value: str) -> list[int]:
    """Expand a cpuset into the sorted list of CPU numbers it selects."""
    chosen: set[int] = set()
    excluded: set[int] = set()
    for item in parse_cpuset(value).split(","):
        target = excluded if item.startswith("^") else chosen
        item = item.lstrip("^")
        low, _sep, high = item.partition("-")
        target.update(range(int(low), int(high or low) + 1))
    return sorted(chosen - excluded)


def valid_disk_name(value: str) -> str:
    text = str(value)
    if not text or "/" in text or ".." in text or text.startswith(".") or "\0" in text:
        raise ValueError(
            f"invalid disk name {value!r}: a disk name may not be empty, contain '/' or '..', or start with '.'"
        )
    return text


def path_inside(path: str, directories: list[str]) -> str:
    """Return the normalised absolute ``path`` if it lies inside one of ``directories``."""
    if not os.path.isabs(path):
        raise ValueError(f"path {path!r} must be absolute")
    real = os.path.normpath(path)
    for directory in directories:
        base = os.path.normpath(directory)
        if real == base or real.startswith(base.rstrip("/") + "/"):
            return real
    raise ValueError(f"path {path!r} is outside the storage directories {', '.join(directories)}")


def safe_name(text: str, replacement: str) -> str:
    """``text`` with every character other than letters, digits, '_', '.' and '-' replaced by
    ``replacement`` (lock file and storage pool names)."""
    return re.sub(r"[^A-Za-z0-9_.-]", replacement, text)
