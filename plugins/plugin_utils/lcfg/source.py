# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Reader for LCFG source profiles (reference lcfg.md sections 1.2-1.8).

After the cpp subset (:mod:`.cpp`) every logical line is a statement::

    comp.res[ctx]   value...          plain assignment: value = rest of line
    !comp.res[ctx]  mMACRO(args)      mutation (macro table in :mod:`.mutations`)

Statements apply in cpp output order (header text where the ``#include`` is).
Macros are expanded in values (plain values and non-quoted mutation arguments),
never inside string literals. Whitespace runs collapse to one space as with cpp.

Derivations: ``"<absolute file>:<line>"`` of the statement's first physical line;
a plain assignment starts a new derivation, each mutation appends its location.

Contexts (``[ctx]``) are evaluated with no client contexts (the inventory's view):
an inactive statement (priority < 0) is checked for syntax and then ignored; an
active context-qualified value is kept apart from the context-free value, and the
highest priority wins at the end (equal priority and different values: error).
A mutation of a context-qualified value starts from the context-free value
current at that point [inference].

Resources whose value is the empty string are kept (value ``""``); a resource that
was only touched by mutations that leave it unset (``mREMOVE`` on an unset value)
does not appear.

Budgets (profiles are untrusted): a value is at most :data:`MAX_VALUE_LENGTH`
characters, and the values built by one profile (every mutation's result) at most
:data:`MAX_VALUES_BUILT` characters in all, so repeated ``mCONCAT`` of a macro cannot
build a 100 MB value or take quadratic time; a derivation keeps its first and last
locations once it grows past :data:`MAX_DERIVATION`. Any exception inside the reader
becomes an LcfgError naming file and line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from .cpp import LogicalLine, Preprocessor
from .errors import LcfgError, excerpt
from .mutations import MUTATIONS, Mutation, MutationError, valid_list, valid_name, valid_tag
from .profile import ContextError, Profile, Resource, context_priority

__all__ = [
    "read_source_profile",
    "parse_statement",
    "Statement",
    "MAX_VALUE_LENGTH",
    "MAX_VALUES_BUILT",
    "MAX_DERIVATION",
]

MAX_VALUE_LENGTH = 64 * 1024
MAX_VALUES_BUILT = 256 * 1024 * 1024
MAX_DERIVATION = 4096

_STMT = re.compile(r"(!?)([^\s.\[\]!]*)\.([^\s\[\]]*)(?:\[([^\]]*)\])?(?:\s+(.*)|)\Z", re.S)
# fast paths for the common forms (text is whitespace-collapsed already)
_FAST_PLAIN = re.compile(r"([A-Za-z][A-Za-z0-9_]*)\.([A-Za-z][A-Za-z0-9_]*)(?: (.*))?\Z", re.S)
_FAST_MUTATION = re.compile(r"!([A-Za-z][A-Za-z0-9_]*)\.([A-Za-z][A-Za-z0-9_]*) ([A-Za-z_]\w*) ?\(([^\"(),]*)\)\Z")
_CALL = re.compile(r"([A-Za-z_]\w*)\s*\(")
_STRING = re.compile(r'"((?:[^"\\\n]|\\.)*)"\Z', re.S)
_UNESCAPE = re.compile(r'\\(["\\])')
_ARG_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_TAGLIST = re.compile(r"[A-Za-z0-9_ ]*\Z")


class Statement:
    """A parsed statement (cached on the logical line, so headers parse once).

    ``error`` holds a syntax problem, raised only when the statement is active.
    Plain assignment: ``mutate`` is False and ``value`` holds the text. Mutation:
    ``macro`` and ``args`` (raw argument texts) are set, or ``macro`` is None when
    the text is not a literal call (it may become one after macro expansion).
    """

    # class-level defaults: a parse sets only what differs (cheap for 100,000s of lines)
    mutate = False
    comp = ""
    res = ""
    key: tuple[str, str] = ("", "")
    ctx: str | None = None
    value = ""
    macro: str | None = None
    args: list[str] | None = None
    error: str | None = None
    checked = False  # tag arguments validated (valid while unexpanded)
    # the macro, when this is a one-argument unquoted mutation whose argument needs
    # no check (the reader's fast path)
    fast: Mutation | None = None

    @property
    def resource(self) -> str | None:
        return f"{self.comp}.{self.res}" if self.comp or self.res else None


def _split_args(text: str, start: int) -> tuple[list[str], int]:
    """Arguments of a call whose '(' is at ``start - 1``: top-level commas split.

    Returns (args, index after the closing paren). ValueError when unbalanced.
    """
    args: list[str] = []
    depth = 0
    cur = start
    i = start
    n = len(text)
    while i < n:
        c = text[i]
        if c == '"':
            m = _ARG_STRING.match(text, i)
            if m is None:
                raise ValueError("unterminated string in macro arguments")
            i = m.end()
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            if depth == 0:
                args.append(text[cur:i].strip())
                return args, i + 1
            depth -= 1
        elif c == "," and depth == 0:
            args.append(text[cur:i].strip())
            cur = i + 1
        i += 1
    raise ValueError("unterminated macro call: missing )")


def _parse_call(text: str, st: Statement) -> bool:
    """Fill ``st.macro``/``st.args`` from ``mNAME(args)``; False if not a call."""
    m = _CALL.match(text)
    if m is None:
        return False
    try:
        args, end = _split_args(text, m.end())
    except ValueError as exc:
        st.error = str(exc)
        return True
    if text[end:].strip():
        st.error = f"unexpected text after {m.group(1)}(...): {excerpt(text[end:].strip())}"
        return True
    st.macro = m.group(1)
    st.args = args
    return True


def parse_statement(text: str) -> Statement:
    """Parse one statement (already comment-free, whitespace-collapsed)."""
    st = Statement()
    m = _FAST_MUTATION.match(text)
    if m is not None:
        st.mutate = True
        st.comp, st.res, macro, arg = m.groups()
        st.macro = macro
        st.key = (st.comp, st.res)
        st.value = text[text.index(" ") + 1 :]
        st.args = [arg.strip()]
        checked = st.checked = _TAGLIST.match(arg) is not None
        mut = MUTATIONS.get(macro)
        if mut is not None and mut.nargs == 1 and not mut.quoted and (checked or not mut.tags):
            st.fast = mut
        return st
    if text[0] != "!":
        m = _FAST_PLAIN.match(text)
        if m is not None:
            st.comp, st.res, value = m.groups()
            st.key = (st.comp, st.res)
            if value:
                st.value = value
            return st
    m = _STMT.match(text)
    if m is None:
        st.error = "bad syntax: expected 'component.resource value' or '!component.resource mMACRO(...)'"
        return st
    bang, st.comp, st.res, ctx, rest = m.groups()
    st.key = (st.comp, st.res)
    st.mutate = bool(bang)
    st.ctx = ctx.strip() if ctx is not None else None
    if not valid_name(st.comp):
        st.error = f"invalid component name {excerpt(st.comp)} (letters, digits, _; starts with a letter)"
        return st
    if not valid_name(st.res):
        st.error = f"invalid resource name {excerpt(st.res)} (letters, digits, _; starts with a letter)"
        return st
    st.value = rest or ""
    if not st.mutate:
        return st
    if not st.value:
        st.error = "mutation without a macro (expected e.g. mSET(value))"
        return st
    _parse_call(st.value, st)  # else: maybe a macro that expands to a call; decided later
    return st


def _unquote(arg: str) -> str | None:
    m = _STRING.match(arg)
    if m is None:
        return None
    return _UNESCAPE.sub(r"\1", m.group(1))


class _Reader:
    def __init__(
        self, include_path: list[str] | None, defines: dict[str, str] | None, allowed_dirs: list[str] | None = None
    ) -> None:
        self.pp = Preprocessor(include_path, defines, allowed_dirs)
        self.built = 0  # characters of every value built so far (MAX_VALUES_BUILT)
        self.expand_text = self.pp.expand
        # (comp, res) -> [value, derivation]
        self.values: dict[tuple[str, str], list] = {}
        # (comp, res) -> {context: [value, derivation, priority]}
        self.variants: dict[tuple[str, str], dict[str, list]] = {}
        self._version = -1
        self._search: Callable[[str], object] | None = None

    @staticmethod
    def fail(problem: str, file: str, ll: LogicalLine, st: Statement | None = None) -> LcfgError:
        return LcfgError(problem, file=file, line=ll.line, resource=st.resource if st else None)

    def checked(self, value: str | None, file: str, ll: LogicalLine, st: Statement) -> str | None:
        """``value`` charged to the budgets; LcfgError when it is over one."""
        if value is None:
            return value
        self.built += len(value)
        if len(value) > MAX_VALUE_LENGTH:
            raise self.fail(
                f"value of {len(value)} characters: longer than the limit of {MAX_VALUE_LENGTH}", file, ll, st
            )
        if self.built > MAX_VALUES_BUILT:
            raise self.fail(
                f"the values built by this profile are over the budget of "
                f"{MAX_VALUES_BUILT} characters (a mutation repeated too often?)",
                file,
                ll,
                st,
            )
        return value

    @staticmethod
    def derivation(old: str, loc: str) -> str:
        """``old`` + ``loc``; a long derivation keeps its first and last locations only."""
        if not old:
            return loc
        if len(old) > MAX_DERIVATION:
            old = old[: old.index(" ")] + " ..." if " " in old else old
        return f"{old} {loc}"

    def statement(self, file: str, ll: LogicalLine) -> None:
        st = ll.parsed
        if st is None:
            st = ll.parsed = parse_statement(ll.text)
        fast = st.fast
        if st.ctx is None and (fast is not None or not st.mutate) and not st.error:
            # fast path: plain assignment or simple mutation, no macro in the argument
            if self._version != self.pp.version:
                self._version = self.pp.version
                self._search = self.pp.macro_search()
            search = self._search
            loc = ll.loc
            if loc is None:
                loc = ll.loc = f"{file}:{ll.line}"
            if fast is not None:
                arg = st.args[0]
                if search is None or search(arg) is None:
                    values = self.values
                    key = st.key
                    slot = values.get(key)
                    if slot is None:
                        values[key] = [self.checked(fast.apply(None, arg), file, ll, st), loc]
                        return
                    old = slot[0]
                    new = fast.apply(old, arg)
                    if new is old or new is None or not fast.tags or valid_list(new):
                        slot[0] = new if new is old else self.checked(new, file, ll, st)
                        slot[1] = self.derivation(slot[1], loc)
                        return
            elif search is None or search(st.value) is None:
                self.values[st.key] = [self.checked(st.value, file, ll, st), loc]
                return
        if st.error is not None:
            raise self.fail(st.error, file, ll, st)
        key = st.key
        if st.ctx is None:
            slot = self.values.get(key)
            if slot is None:
                slot = self.values[key] = [None, ""]
        else:
            ctx = st.ctx
            try:
                prio = context_priority(ctx)
            except ContextError as exc:
                raise self.fail(str(exc), file, ll, st) from None
            if prio < 0:
                # inactive without client contexts: check the statement, then ignore it
                if st.mutate:
                    self._new_value(st, file, ll, None, apply=False)
                return
            variants = self.variants.setdefault(key, {})
            slot = variants.get(ctx)
            if slot is None:
                base = self.values.get(key)
                slot = variants[ctx] = [base[0] if base else None, base[1] if base else "", prio]
        if st.mutate:
            slot[0] = self.checked(self._new_value(st, file, ll, slot[0]), file, ll, st)
            slot[1] = self.derivation(slot[1], f"{file}:{ll.line}")
        else:
            slot[0] = self.checked(self._expand(st.value, file, ll, st), file, ll, st)
            slot[1] = f"{file}:{ll.line}"

    def _expand(self, text: str, file: str, ll: LogicalLine, st: Statement) -> str:
        try:
            return self.expand_text(text)
        except ValueError as exc:
            raise self.fail(str(exc), file, ll, st) from None

    def _new_value(self, st: Statement, file: str, ll: LogicalLine, old: str | None, apply: bool = True) -> str | None:
        macro, args = st.macro, st.args
        if macro is None:
            # not a literal call: cpp would expand macros first (#define M mADD(x))
            expanded = " ".join(self._expand(st.value, file, ll, st).split())
            tmp = Statement()
            if not _parse_call(expanded, tmp):
                raise self.fail(
                    f"expected a mutation macro call such as mSET(value), got {excerpt(st.value)}", file, ll, st
                )
            if tmp.error:
                raise self.fail(tmp.error, file, ll, st)
            macro, args = tmp.macro, tmp.args
        mut = MUTATIONS.get(macro or "")
        if mut is None:
            known = ", ".join(sorted(MUTATIONS))
            raise self.fail(f"unknown mutation macro {macro} (known: {known})", file, ll, st)
        args = args or [""]
        if len(args) != mut.nargs:
            hint = f'; use {mut.name}Q("...") for values with commas' if not mut.quoted else ""
            raise self.fail(
                f"{mut.name} takes {mut.nargs} argument{'s' if mut.nargs > 1 else ''}, got {len(args)}{hint}",
                file,
                ll,
                st,
            )
        if mut.quoted:
            values = [self._quoted(mut, a, file, ll, st) for a in args]
        else:
            search = self.pp.macro_search()
            if search is None:
                values = args
            else:
                values = [a if search(a) is None else self._expand(a, file, ll, st) for a in args]
        if mut.tags:
            unchanged = values is args is st.args or (
                args is st.args and all(v is a for v, a in zip(values, args, strict=True))
            )
            if not (unchanged and st.checked):
                for v in values:
                    for tag in v.split():
                        if not valid_tag(tag):
                            raise self.fail(
                                f"{mut.name}: invalid tag {excerpt(tag)} (tags are letters, digits and _)", file, ll, st
                            )
                st.checked = unchanged
        if not apply:
            return old
        try:
            new = mut.apply(old, *values)
        except MutationError as exc:
            raise self.fail(f"{mut.name}: {exc}", file, ll, st) from None
        if mut.tags and new is not None and new is not old and not valid_list(new):
            raise self.fail(f"{mut.name}: value {excerpt(new)} is not a valid tag list", file, ll, st)
        return new

    def _quoted(self, mut: Mutation, arg: str, file: str, ll: LogicalLine, st: Statement) -> str:
        value = _unquote(arg)
        if value is None:
            value = _unquote(self._expand(arg, file, ll, st).strip())
        if value is None:
            raise self.fail(f"{mut.name} expects one double-quoted string argument, got {excerpt(arg)}", file, ll, st)
        return value

    def profile(self, name: str, path: str) -> Profile:
        resources: dict[str, dict[str, Resource]] = {}
        variants = self.variants
        for key, (value, deriv) in self.values.items():
            if key in variants:
                continue
            if value is not None:
                comp = resources.get(key[0])
                if comp is None:
                    comp = resources[key[0]] = {}
                comp[key[1]] = Resource(value, deriv)
        for key, by_ctx in variants.items():
            comp_name, res = key
            base = self.values.get(key)
            best: tuple[int, str | None, str, str | None] | None = None
            if base is not None:
                best = (0, base[0], base[1], None)
            for ctx, (value, deriv, prio) in by_ctx.items():
                if best is None or prio > best[0]:
                    best = (prio, value, deriv, ctx)
                elif prio == best[0] and value != best[1]:
                    file, line = Resource(value or "", deriv).first_location
                    raise LcfgError(
                        f"conflicting values {excerpt(best[1])} ({best[2]}) and {excerpt(value)} ({deriv}) "
                        f"with equal context priority {prio}",
                        file=file or path,
                        line=line,
                        resource=f"{comp_name}.{res}",
                    )
            if best is None or best[1] is None:
                continue
            resources.setdefault(comp_name, {})[res] = Resource(best[1], best[2], best[3])
        return Profile(name, path, resources)


def read_source_profile(
    path: str,
    include_path: list[str] | None = None,
    defines: dict[str, str] | None = None,
    name: str | None = None,
    text: str | None = None,
    allowed_dirs: list[str] | None = None,
    inputs: dict[str, tuple[int, int]] | None = None,
) -> Profile:
    """Read one source profile (``text`` instead of the file's content if given).

    ``include_path``: directories searched by ``#include``; ``defines``: macros
    defined before the profile (``cpp -D``; a ``None`` value means ``1``);
    ``allowed_dirs``: directories besides the include path (and the profile's own)
    that ``#include`` may reach; ``inputs`` receives ``path -> (mtime_ns, size)`` of
    every file read, also when the profile fails. The profile's name defaults to the
    file name. Only LcfgError comes out.
    """
    path = os.path.abspath(path)
    reader = _Reader(include_path, defines, allowed_dirs)
    if inputs is not None:
        reader.pp.inputs = inputs
    try:
        reader.pp.run(path, text, reader.statement)
        return reader.profile(name or os.path.basename(path), path)
    except LcfgError:
        raise
    except Exception as exc:  # a reader bug or an exhausted resource: still an LcfgError
        raise LcfgError(f"cannot read the profile: {type(exc).__name__}: {excerpt(exc, 200)}", file=path) from exc
