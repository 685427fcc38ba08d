# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The single error type of the LCFG profile reader and model."""

from __future__ import annotations

__all__ = ["LcfgError", "excerpt", "EXCERPT_LENGTH"]

#: errors quote at most this many characters of profile text (see docs/lcfg-language.md)
EXCERPT_LENGTH = 40


def excerpt(text: object, limit: int = EXCERPT_LENGTH, quote: bool = True) -> str:
    """A short, quoted, escaped piece of profile text for an error message.

    Error messages end up in warnings and logs read by people who may not read the
    profile: quote little (a 100 MB value or a whole header line is never echoed) and
    escape control characters so a value cannot forge terminal output.
    """
    text = str(text)
    more = f"... ({len(text)} characters)" if len(text) > limit else ""
    shown = repr(text[:limit])
    return (shown if quote else shown[1:-1]) + more


class LcfgError(Exception):
    """A problem in a profile; ``str()`` reads ``file:line: comp.res: problem``."""

    def __init__(
        self, problem: str, file: str | None = None, line: int | None = None, resource: str | None = None
    ) -> None:
        self.problem = problem
        self.file = file
        self.line = line
        self.resource = resource
        super().__init__(str(self))

    @property
    def location(self) -> str:
        if self.file is None:
            return ""
        return f"{self.file}:{self.line}" if self.line is not None else self.file

    def __str__(self) -> str:
        parts = [p for p in (self.location, self.resource) if p]
        return ": ".join(parts + [self.problem])
