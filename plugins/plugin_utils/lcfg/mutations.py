# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The mutation macros of LCFG source profiles (reference lcfg.md section 1.7).

The value primitives follow lcfg-core ``resources/mutate.c``; the mapping of the
``mXXX`` macro names onto them is the reference's inference and lives in ONE table,
:data:`MUTATIONS`, which tests and callers may extend or override.

Parsed header statements are cached per process with their macro resolved: after
changing :data:`MUTATIONS`, call ``cpp.clear_cache()``.

A value is ``None`` when the resource is unset. Primitives raise
:class:`MutationError` (a ``ValueError``) for a failed mutation; the source reader
turns it into an :class:`LcfgError` naming file, line and resource.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .errors import excerpt

__all__ = [
    "MutationError",
    "Mutation",
    "MUTATIONS",
    "value_append",
    "value_prepend",
    "value_append_tag",
    "value_prepend_tag",
    "value_add_tags",
    "value_remove_tags",
    "value_replace_tag",
    "value_replace",
    "value_remove",
    "value_has_tag",
    "valid_tag",
    "valid_list",
    "valid_name",
]

Value = str | None

_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_TAG_RE = re.compile(r"[A-Za-z0-9_]+\Z")
_LIST_RE = re.compile(r"[A-Za-z0-9_ \t\r\n]*\Z")
_SEPARATORS = " \t\r\n"
_SPLIT_RE = re.compile(r"[ \t\r\n]+")


class MutationError(ValueError):
    """A mutation could not be applied (the message is the problem)."""


def valid_name(name: str) -> bool:
    """Component or resource name (lcfg-core ``lcfgresource_valid_name``)."""
    return bool(_NAME_RE.match(name))


def valid_tag(tag: str) -> bool:
    """One element of a list value (``lcfgresource_valid_tag``): may start with a digit."""
    return bool(_TAG_RE.match(tag))


def valid_list(value: str) -> bool:
    """A list value: only tag characters and whitespace; the empty list is valid."""
    return bool(_LIST_RE.match(value))


def _tags(arg: str) -> list[str]:
    return [t for t in _SPLIT_RE.split(arg) if t]


def _find_tag(value: str, tag: str) -> int:
    """Index of the first whole-word occurrence of ``tag`` in ``value``, or -1."""
    start = 0
    n = len(tag)
    while True:
        i = value.find(tag, start)
        if i < 0:
            return -1
        before_ok = i == 0 or value[i - 1] in _SEPARATORS
        after = i + n
        after_ok = after == len(value) or value[after] in _SEPARATORS
        if before_ok and after_ok:
            return i
        start = i + 1


# ---------------------------------------------------------------- primitives


def value_append(old: Value, s: str) -> Value:
    """``old + s`` with no separator; an empty ``s`` changes nothing."""
    if not s:
        return old
    return (old or "") + s


def value_prepend(old: Value, s: str) -> Value:
    """``s + old`` with no separator; an empty ``s`` changes nothing."""
    if not s:
        return old
    return s + (old or "")


def value_append_tag(old: Value, tag: str) -> Value:
    """Append one tag; one space is added only when needed. Duplicates allowed."""
    if not tag:
        return old
    if not old:
        return tag
    if old[-1] in _SEPARATORS:
        return old + tag
    return old + " " + tag


def value_prepend_tag(old: Value, tag: str) -> Value:
    """Prepend one tag; one space is added only when needed. Duplicates allowed."""
    if not tag:
        return old
    if not old:
        return tag
    if old[0] in _SEPARATORS:
        return tag + old
    return tag + " " + old


def value_has_tag(value: Value, tag: str) -> bool:
    """Whole-word membership test."""
    return bool(value) and bool(tag) and _find_tag(value, tag) >= 0  # type: ignore[arg-type]


def value_add_tags(old: Value, tags: str) -> Value:
    """Append each whitespace-separated tag that is not already present."""
    value = old
    for tag in _tags(tags):
        if not value_has_tag(value, tag):
            value = value_append_tag(value, tag)
    return value


def _remove_one_tag(value: str, tag: str) -> str:
    i = _find_tag(value, tag)
    if i < 0:
        return value
    j = i + len(tag)
    while j < len(value) and value[j] in _SEPARATORS:
        j += 1
    return value[:i] + value[j:]


def value_remove_tags(old: Value, tags: str) -> Value:
    """Remove the first whole-word occurrence of each tag and the separators after it.

    An absent tag is not an error; an unset value stays unset.
    """
    if old is None:
        return None
    value = old
    for tag in _tags(tags):
        value = _remove_one_tag(value, tag)
    return value


def value_replace_tag(old: Value, old_tag: str, new_tag: str) -> Value:
    """Replace the first whole-word ``old_tag`` by ``new_tag`` (empty = removal)."""
    old_tag = old_tag.strip()
    new_tag = new_tag.strip()
    if not new_tag:
        return value_remove_tags(old, old_tag)
    if not old:
        raise MutationError(f"cannot replace tag {excerpt(old_tag)}: the value is empty")
    i = _find_tag(old, old_tag) if old_tag else -1
    if i < 0:
        raise MutationError(f"cannot replace tag {excerpt(old_tag)}: not present in {excerpt(old)}")
    return old[:i] + new_tag + old[i + len(old_tag) :]


def value_replace(old: Value, sub: str, new: str) -> Value:
    """Replace the first substring ``sub`` (not word-bounded); empty ``new`` = removal."""
    if not old or not sub:
        return old
    i = old.find(sub)
    if i < 0:
        return old
    return old[:i] + new + old[i + len(sub) :]


def value_remove(old: Value, sub: str) -> Value:
    """Remove the first substring ``sub``."""
    return value_replace(old, sub, "")


def _each_tag(primitive: Callable[[Value, str], Value]) -> Callable[[Value, str], Value]:
    def apply(old: Value, tags: str) -> Value:
        value = old
        for tag in _tags(tags):
            value = primitive(value, tag)
        return value

    return apply


def _prepend_tags(old: Value, tags: str) -> Value:
    # prepend in reverse so that mPREPEND(a b) gives "a b old"
    value = old
    for tag in reversed(_tags(tags)):
        value = value_prepend_tag(value, tag)
    return value


# ---------------------------------------------------------------- the table


@dataclass(frozen=True)
class Mutation:
    """One macro: ``nargs`` arguments, ``apply(old, *args) -> new``.

    ``tags``: the arguments are tag lists and the result must be a valid list.
    ``quoted``: each argument is one double-quoted C string literal (``…Q`` forms).
    """

    name: str
    nargs: int
    apply: Callable[..., Value]
    tags: bool = False
    quoted: bool = False


def _set(old: Value, v: str) -> Value:
    return v


_BASE: list[tuple[str, int, Callable[..., Value], bool]] = [
    # name       nargs  semantics (lcfg-core primitive)        tag operation
    ("mSET", 1, _set, False),  # replace the value
    ("mADD", 1, value_add_tags, True),  # add_tags (dedup)
    ("mEXTRA", 1, _each_tag(value_append_tag), True),  # append_tag, duplicates allowed
    ("mAPPEND", 1, _each_tag(value_append_tag), True),  # alias of mEXTRA [inference]
    ("mPREPEND", 1, _prepend_tags, True),  # prepend_tag
    ("mREMOVE", 1, value_remove_tags, True),  # remove_tags
    ("mREPLACE", 2, value_replace_tag, True),  # replace_tag (fails if absent)
    ("mSUBST", 2, value_replace, False),  # replace first substring
    ("mCONCAT", 1, value_append, False),  # append, no separator
]

MUTATIONS: dict[str, Mutation] = {}
for _name, _nargs, _fn, _is_tags in _BASE:
    MUTATIONS[_name] = Mutation(_name, _nargs, _fn, tags=_is_tags)
    MUTATIONS[_name + "Q"] = Mutation(_name + "Q", _nargs, _fn, tags=_is_tags, quoted=True)
del _name, _nargs, _fn, _is_tags
