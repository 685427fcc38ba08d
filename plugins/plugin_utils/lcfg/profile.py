# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""What the readers produce: resources per component, each with its derivation."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .mutations import valid_name

__all__ = ["Resource", "Profile", "ContextError", "context_priority", "combine_contexts"]


@dataclass
class Resource:
    value: str
    derivation: str = ""  # "file:line", several separated by spaces after mutations
    context: str | None = None

    @property
    def first_location(self) -> tuple[str | None, int | None]:
        """(file, line) of the last derivation entry: the statement that set the value."""
        if not self.derivation:
            return None, None
        last = self.derivation.split()[-1]
        file, sep, line = last.rpartition(":")
        if sep and line.split(",")[0].isdigit():
            return file, int(line.split(",")[-1])
        return last, None


@dataclass
class Profile:
    name: str  # inventory name of the physical host
    path: str  # file or URL it was read from
    resources: dict[str, dict[str, Resource]] = field(default_factory=dict)

    def get(self, component: str, resource: str) -> Resource | None:
        return self.resources.get(component, {}).get(resource)

    def value(self, component: str, resource: str, default: str | None = None) -> str | None:
        res = self.get(component, resource)
        return default if res is None else res.value

    def plain(self) -> dict[str, dict[str, str]]:
        """``{component: {resource: value}}``: the ``lcfg_resources`` hostvar."""
        return {
            comp: {name: res.value for name, res in sorted(items.items())}
            for comp, items in sorted(self.resources.items())
        }


# ---------------------------------------------------------------- contexts
# LCFG context expressions (reference lcfg.md section 1.8, lcfg-core common/context):
# ``|`` < ``^`` < ``&`` < ``!`` in precedence, parentheses, terms NAME, !NAME,
# NAME = value, NAME != value (value: bare word, "..." or '...', or a boolean word).
# A term is +priority when true, -priority when false; an unknown context has
# priority 1 and no value. A resource is active when its priority is >= 0.

_CTX_TOKEN = re.compile(
    r"""\s*(?:(?P<op>!=|[|^&!()=])|(?P<word>[A-Za-z0-9_]+)|"(?P<dq>(?:[^"\n]|"")*)"|'(?P<sq>(?:[^'\n]|'')*)')"""
)
_CTX_TRUE = {"yes", "true", "on"}
_CTX_FALSE = {"no", "false", "off"}


class ContextError(ValueError):
    """A context expression does not parse."""


def _ctx_tokens(expr: str) -> list[tuple[str, str]]:
    toks: list[tuple[str, str]] = []
    pos = 0
    expr = expr.rstrip()
    while pos < len(expr):
        m = _CTX_TOKEN.match(expr, pos)
        if m is None:
            raise ContextError(f"unexpected {expr[pos:].strip()[:20]!r} in context {expr!r}")
        pos = m.end()
        if m.group("op") is not None:
            toks.append(("op", m.group("op")))
        elif m.group("word") is not None:
            toks.append(("word", m.group("word")))
        elif m.group("dq") is not None:
            toks.append(("str", m.group("dq").replace('""', '"')))
        else:
            toks.append(("str", m.group("sq").replace("''", "'")))
    return toks


class _CtxParser:
    def __init__(self, toks: list[tuple[str, str]], contexts: dict[str, tuple[int, str]]) -> None:
        self.toks = toks
        self.pos = 0
        self.contexts = contexts
        self.depth = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise ContextError("context expression ends too early")
        self.pos += 1
        return tok

    def query(self, name: str, test: str, value: str | None = None) -> int:
        # a context name follows the rule of component and resource names
        if not valid_name(name):
            raise ContextError(f"invalid context name {name!r}")
        prio, current = self.contexts.get(name, (1, ""))
        known = name in self.contexts
        truth = current.lower() in ("yes", "true", "on", "1") if known else False
        if test == "true":
            ok = truth
        elif test == "false":
            ok = not truth
        else:
            same = (value or "") == current
            ok = same if test == "eq" else not same
        return prio if ok else -prio

    def expression(self, level: int = 0) -> int:
        ops = ("|", "^", "&")
        if level == 3:
            return self.term()
        left = self.expression(level + 1)
        while self.peek() == ("op", ops[level]):
            self.pos += 1
            right = self.expression(level + 1)
            if level == 0:  # or
                left = min(left, right) if left < 0 and right < 0 else max(left, right)
            elif level == 1:  # xor
                if left < 0 and right < 0:
                    left = min(left, right)
                elif left > 0 and right > 0:
                    left = -max(left, right)
                else:
                    left = max(left, right)
            else:  # and
                left = max(left, right) if left > 0 and right > 0 else min(left, right)
        return left

    def term(self) -> int:
        self.depth += 1
        if self.depth > 100:
            raise ContextError("context expression nested too deeply")
        try:
            kind, val = self.take()
            if (kind, val) == ("op", "("):
                v = self.expression()
                if self.take() != ("op", ")"):
                    raise ContextError("missing ) in context expression")
                return v
            if (kind, val) == ("op", "!"):
                nxt = self.peek()
                if nxt == ("op", "("):
                    return -self.term()
                kind, val = self.take()
                if kind != "word":
                    raise ContextError("! must be followed by a context name or (")
                return self.query(val, "false")
            if kind != "word":
                raise ContextError(f"unexpected {val!r} in context expression")
            nxt = self.peek()
            if nxt in (("op", "="), ("op", "!=")):
                self.pos += 1
                eq = nxt[1] == "="
                vkind, value = self.take()
                if vkind == "op":
                    raise ContextError(f"unexpected {value!r} after {nxt[1]}")
                low = value.lower()
                if vkind == "word" and (low in _CTX_TRUE or low in _CTX_FALSE):
                    res = self.query(val, "true" if low in _CTX_TRUE else "false")
                    return res if eq else -res
                return self.query(val, "eq" if eq else "ne", value)
            return self.query(val, "true")
        finally:
            self.depth -= 1


def context_priority(expr: str | None, contexts: dict[str, tuple[int, str]] | None = None) -> int:
    """Priority of a context expression; ``contexts`` maps name -> (priority, value).

    No contexts (the inventory's case): bare names are false (-1), ``!name`` true (+1).
    Raises ContextError for a malformed expression. Empty expression: 0.
    """
    if expr is None or not expr.strip():
        return 0
    parser = _CtxParser(_ctx_tokens(expr), contexts or {})
    value = parser.expression()
    if parser.pos != len(parser.toks):
        raise ContextError(f"unexpected {parser.toks[parser.pos][1]!r} in context {expr!r}")
    return value


def combine_contexts(parent: str | None, child: str | None) -> str | None:
    """AND two context expressions as lcfg-core does: ``(a) & (b)`` in sorted order."""
    if not parent:
        return child or None
    if not child:
        return parent
    a, b = sorted((parent, child))
    return f"({a}) & ({b})"
